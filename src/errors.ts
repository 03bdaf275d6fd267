/**
 * Typed errors. Every failure tsgraph reports carries a stable `code`
 * (`TSG_*`), a human message, optional structured `data` and the `cause`.
 * Subclasses name a category; the CLI maps a category to an exit code, so
 * scripts can tell "not found" from "tampered" without parsing text.
 */

/** Stable error codes. Add, never rename: scripts match on them. */
export type ErrorCode =
  | 'TSG_USAGE'
  | 'TSG_INVALID_REFERENCE'
  | 'TSG_INVALID_DIGEST'
  | 'TSG_INVALID_MANIFEST'
  | 'TSG_NOT_FOUND'
  | 'TSG_REPO_NOT_FOUND'
  | 'TSG_TAG_NOT_FOUND'
  | 'TSG_BLOB_NOT_FOUND'
  | 'TSG_PLATFORM_NOT_FOUND'
  | 'TSG_AUTH_REQUIRED'
  | 'TSG_AUTH_FAILED'
  | 'TSG_DENIED'
  | 'TSG_DIGEST_MISMATCH'
  | 'TSG_SIZE_MISMATCH'
  | 'TSG_UNREACHABLE'
  | 'TSG_TLS'
  | 'TSG_REGISTRY'
  | 'TSG_TOO_MANY_REQUESTS'
  | 'TSG_TIMEOUT'
  | 'TSG_UNSUPPORTED'
  | 'TSG_UNSAFE_PATH'
  | 'TSG_INVALID_LAYER'
  | 'TSG_IN_USE'
  | 'TSG_EXISTS'
  | 'TSG_DRIVER_MISMATCH'
  | 'TSG_LOCKED'
  | 'TSG_ABORTED'
  | 'TSG_NO_SPACE'
  | 'TSG_INTERNAL';

export interface ErrorOptions {
  cause?: unknown;
  data?: Record<string, unknown>;
}

/** Base class of every error tsgraph throws on purpose. */
export class TsgraphError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;
  /** Category name, used for exit codes and JSON output. */
  readonly category: string = 'error';

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.data = options.data ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, category: this.category, message: this.message, data: this.data };
  }
}

/** The caller asked for something malformed (bad flag, bad reference). */
export class UsageError extends TsgraphError {
  override readonly category = 'usage';
}
/** The named thing does not exist (image, repo, tag, blob, platform). */
export class NotFoundError extends TsgraphError {
  override readonly category = 'not-found';
}
/** Credentials missing, wrong, or not allowed to do this. */
export class AuthError extends TsgraphError {
  override readonly category = 'auth';
}
/** Bytes do not match what their descriptor promised. Nothing was stored. */
export class IntegrityError extends TsgraphError {
  override readonly category = 'integrity';
}
/** Network or registry failure (unreachable, TLS, HTTP errors, throttling). */
export class RegistryError extends TsgraphError {
  override readonly category = 'registry';
  /** HTTP status, when the registry answered. */
  readonly status: number | undefined;
  /** Error codes from the registry's JSON body (`MANIFEST_UNKNOWN`, …). */
  readonly registryCodes: string[];
  /** True when trying again later may succeed. */
  readonly temporary: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: ErrorOptions & { status?: number; registryCodes?: string[]; temporary?: boolean } = {},
  ) {
    super(code, message, options);
    this.status = options.status;
    this.registryCodes = options.registryCodes ?? [];
    this.temporary = options.temporary ?? false;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), status: this.status, registryCodes: this.registryCodes, temporary: this.temporary };
  }
}
/** The input is valid but tsgraph (or this kernel) does not handle it. */
export class UnsupportedError extends TsgraphError {
  override readonly category = 'unsupported';
}
/** Hostile or malformed content tried to escape its root. */
export class UnsafeError extends TsgraphError {
  override readonly category = 'unsafe';
}
/** Someone else holds a lock, or the operation was cancelled. */
export class BusyError extends TsgraphError {
  override readonly category = 'busy';
}

/** The machine ran out of something: disk space or quota (ENOSPC, EDQUOT). Nothing half-stored. */
export class ResourceError extends TsgraphError {
  override readonly category = 'resource';
}

/** Exit code per category; documented in docs/cli.md. */
export const EXIT_CODES: Record<string, number> = {
  error: 1,
  usage: 2,
  'not-found': 3,
  auth: 4,
  integrity: 5,
  registry: 6,
  unsupported: 7,
  unsafe: 8,
  busy: 9,
  resource: 10,
};

/** Wraps anything thrown into a TsgraphError (keeping the original as cause). */
export function toTsgraphError(err: unknown): TsgraphError {
  if (err instanceof TsgraphError) return err;
  if (isAbortError(err)) return new BusyError('TSG_ABORTED', 'operation aborted', { cause: err });
  const system = fromSystemError(err);
  if (system) return system;
  const message = err instanceof Error ? err.message : String(err);
  return new TsgraphError('TSG_INTERNAL', message, { cause: err });
}

/**
 * A system error that has a meaning of its own for users, whatever step it
 * hit: a full disk is TSG_NO_SPACE wherever it happens (blob ingest, unpack,
 * metadata write, commit), never "malformed layer" or "internal".
 * Undefined for anything else.
 */
export function fromSystemError(err: unknown): TsgraphError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    const path = (err as { path?: unknown }).path;
    const where = typeof path === 'string' ? ` (writing ${path})` : '';
    return new ResourceError('TSG_NO_SPACE', `no space left on the device${code === 'EDQUOT' ? ' (disk quota)' : ''}${where}; free some (tsgraph gc) and try again`, {
      cause: err,
      data: { errno: code },
    });
  }
  return undefined;
}

export function isAbortError(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    ((err as { name?: string }).name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR')
  );
}

/** Throws the signal's reason as TSG_ABORTED when the signal fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new BusyError('TSG_ABORTED', 'operation aborted', { cause: signal.reason });
  }
}
