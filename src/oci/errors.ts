import { type ErrorOptions, TsgraphError } from '../errors.js';

/** A manifest, index or config that does not parse or breaks the spec. */
export class InvalidManifest extends TsgraphError {
  override readonly category = 'integrity';
  constructor(message: string, options: ErrorOptions = {}) {
    super('TSG_INVALID_MANIFEST', message, options);
  }
}
