import { type ErrorOptions, IntegrityError } from '../errors.js';

/**
 * A manifest, index or config that does not parse or breaks the spec:
 * TSG_INVALID_MANIFEST, an IntegrityError like every code of its category
 * (one class per category: src/errors.ts).
 */
export function invalidManifest(message: string, options: ErrorOptions = {}): IntegrityError {
  return new IntegrityError('TSG_INVALID_MANIFEST', message, options);
}
