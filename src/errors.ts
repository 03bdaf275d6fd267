/**
 * Typed errors. Every failure tsgraph reports carries a stable `code`
 * (`TSG_*`), a human message, optional structured `data` and the `cause`.
 *
 * Each code belongs to exactly one category, and each category has exactly
 * one class: `TSG_EXISTS` is always a {@link BusyError}, wherever it is
 * thrown. {@link ERROR_CODES} is the table (code → category, class, exit
 * code, meaning); the CLI maps a category to an exit code, so scripts can
 * tell "not found" from "tampered" without parsing text, and a runtime can
 * `instanceof`-test the class or `switch` on the code.
 *
 * This module imports nothing: the CLI loads it at every start.
 */

/**
 * Every error code tsgraph throws. Add, never rename: scripts match on them.
 * {@link ERROR_CODES} gives each one's category, class and meaning.
 */
export type ErrorCode =
  /** A malformed call or command line: a bad flag, name or option value. */
  | 'TSG_USAGE'
  /** An image reference that does not parse (`[registry/]repo[:tag][@digest]`). */
  | 'TSG_INVALID_REFERENCE'
  /** A digest that is not `sha256:<64 hex>` (or an unsupported algorithm). */
  | 'TSG_INVALID_DIGEST'
  /** A manifest, index or config that does not parse or breaks the OCI spec. */
  | 'TSG_INVALID_MANIFEST'
  /** An image, container, bundle or store that is not there. */
  | 'TSG_NOT_FOUND'
  /** The registry does not know the repository. */
  | 'TSG_REPO_NOT_FOUND'
  /** The repository has no such tag or manifest digest. */
  | 'TSG_TAG_NOT_FOUND'
  /** A blob is missing (in the registry, the OCI layout or the content store). */
  | 'TSG_BLOB_NOT_FOUND'
  /** A multi-platform image has no manifest for the requested platform. */
  | 'TSG_PLATFORM_NOT_FOUND'
  /** The registry wants credentials and none were given (or they were withheld from another origin). */
  | 'TSG_AUTH_REQUIRED'
  /** The registry refused the credentials given. */
  | 'TSG_AUTH_FAILED'
  /** Authenticated, but not allowed to do this (pull, push, mount from a repository). */
  | 'TSG_DENIED'
  /** Bytes whose sha256 is not the digest promised (blob, manifest, config, or a layer's diffId). Nothing was stored. */
  | 'TSG_DIGEST_MISMATCH'
  /** Bytes whose length is not the size promised. Nothing was stored. */
  | 'TSG_SIZE_MISMATCH'
  /** The registry cannot be reached (DNS, connection refused or reset). */
  | 'TSG_UNREACHABLE'
  /** The TLS handshake failed (untrusted or invalid certificate). */
  | 'TSG_TLS'
  /** The registry answered with an error not covered by a more precise code. */
  | 'TSG_REGISTRY'
  /** The registry throttles (HTTP 429) and the retries ran out. */
  | 'TSG_TOO_MANY_REQUESTS'
  /** A registry request made no progress within its limit (connect, answer or body) and the retries ran out. */
  | 'TSG_TIMEOUT'
  /** Valid input that tsgraph or this kernel does not handle (a media type, a filesystem, a mount feature, a permission). */
  | 'TSG_UNSUPPORTED'
  /** Content that tried to leave its root or is not what it must be (a symlinked `/etc/passwd`, `..` in a tar). */
  | 'TSG_UNSAFE_PATH'
  /** A layer tar that is malformed (bad header, data after the end, a name too long). */
  | 'TSG_INVALID_LAYER'
  /** Something is in use: an image with containers (rmi), a busy mount, a layer with children. */
  | 'TSG_IN_USE'
  /** The name is taken (a container, a bundle's config.json). */
  | 'TSG_EXISTS'
  /** The store root holds another driver's layers than the one asked for. */
  | 'TSG_DRIVER_MISMATCH'
  /** A lock stayed held by another process past its wait limit. */
  | 'TSG_LOCKED'
  /** The caller's AbortSignal fired (or SIGINT/SIGTERM in the CLI). */
  | 'TSG_ABORTED'
  /** Rootless operation cannot work here; the message names the missing piece (subuid range, user namespaces, newuidmap). */
  | 'TSG_ROOTLESS'
  /** The disk or quota is full (ENOSPC, EDQUOT). Nothing half-stored; `gc` frees space. */
  | 'TSG_NO_SPACE'
  /** A bug or an unexpected system error; `cause` holds the original. */
  | 'TSG_INTERNAL';

/** Categories: one class each, and one CLI exit code each (docs/cli.md). */
export type ErrorCategory = 'error' | 'usage' | 'not-found' | 'auth' | 'integrity' | 'registry' | 'unsupported' | 'unsafe' | 'busy' | 'resource' | 'interrupted';

/**
 * code → [category, meaning]. The single place a code's category is decided;
 * `satisfies` makes a code missing here (or one not in ErrorCode) a compile error.
 */
const CODE_TABLE = {
  TSG_USAGE: ['usage', 'a malformed call or command line: a bad flag, name or option value'],
  TSG_INVALID_REFERENCE: ['usage', 'an image reference that does not parse'],
  TSG_INVALID_DIGEST: ['usage', 'a digest that is not sha256:<64 hex>'],
  TSG_INVALID_MANIFEST: ['integrity', 'a manifest, index or config that does not parse or breaks the OCI spec'],
  TSG_NOT_FOUND: ['not-found', 'an image, container, bundle or store that is not there'],
  TSG_REPO_NOT_FOUND: ['not-found', 'the registry does not know the repository'],
  TSG_TAG_NOT_FOUND: ['not-found', 'the repository has no such tag or manifest digest'],
  TSG_BLOB_NOT_FOUND: ['not-found', 'a blob is missing (registry, OCI layout or content store)'],
  TSG_PLATFORM_NOT_FOUND: ['not-found', 'a multi-platform image has no manifest for the requested platform'],
  TSG_AUTH_REQUIRED: ['auth', 'the registry wants credentials and none were given (or they were withheld)'],
  TSG_AUTH_FAILED: ['auth', 'the registry refused the credentials given'],
  TSG_DENIED: ['auth', 'authenticated, but not allowed to do this'],
  TSG_DIGEST_MISMATCH: ['integrity', 'bytes whose sha256 is not the digest promised; nothing was stored'],
  TSG_SIZE_MISMATCH: ['integrity', 'bytes whose length is not the size promised; nothing was stored'],
  TSG_UNREACHABLE: ['registry', 'the registry cannot be reached'],
  TSG_TLS: ['registry', 'the TLS handshake failed'],
  TSG_REGISTRY: ['registry', 'the registry answered with an error'],
  TSG_TOO_MANY_REQUESTS: ['registry', 'the registry throttles (429) and the retries ran out'],
  TSG_TIMEOUT: ['registry', 'a registry request made no progress within its limit and the retries ran out'],
  TSG_UNSUPPORTED: ['unsupported', 'valid input that tsgraph or this kernel does not handle'],
  TSG_UNSAFE_PATH: ['unsafe', 'content that tried to leave its root or is not what it must be'],
  TSG_INVALID_LAYER: ['error', 'a layer tar that is malformed'],
  TSG_IN_USE: ['busy', 'something is in use (an image with containers, a busy mount, a layer with children)'],
  TSG_EXISTS: ['busy', 'the name is taken'],
  TSG_DRIVER_MISMATCH: ['error', "the store root holds another driver's layers"],
  TSG_LOCKED: ['busy', 'a lock stayed held by another process past its wait limit'],
  TSG_ABORTED: ['interrupted', "the caller's AbortSignal fired (SIGINT/SIGTERM in the CLI)"],
  TSG_ROOTLESS: ['unsupported', 'rootless operation cannot work here; the message names the missing piece'],
  TSG_NO_SPACE: ['resource', 'the disk or quota is full; nothing half-stored'],
  TSG_INTERNAL: ['error', 'a bug or an unexpected system error'],
} as const satisfies Record<ErrorCode, readonly [ErrorCategory, string]>;

/** The codes of one category: `ErrorCodeOf<'busy'>` = `'TSG_IN_USE' | 'TSG_EXISTS' | 'TSG_LOCKED'`. */
export type ErrorCodeOf<C extends ErrorCategory> = { [K in ErrorCode]: (typeof CODE_TABLE)[K][0] extends C ? K : never }[ErrorCode];

/** Exit code per category; documented in docs/cli.md. (An interrupted CLI exits 130 after SIGINT, 143 after SIGTERM.) */
export const EXIT_CODES: Readonly<Record<ErrorCategory, number>> = {
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
  interrupted: 130,
};

/** The class name of each category (one class per category). */
const CLASS_NAMES: Readonly<Record<ErrorCategory, string>> = {
  error: 'TsgraphError',
  usage: 'UsageError',
  'not-found': 'NotFoundError',
  auth: 'AuthError',
  integrity: 'IntegrityError',
  registry: 'RegistryError',
  unsupported: 'UnsupportedError',
  unsafe: 'UnsafeError',
  busy: 'BusyError',
  resource: 'ResourceError',
  interrupted: 'InterruptedError',
};

/** One row of {@link ERROR_CODES}. */
export interface ErrorCodeInfo {
  /** The category (`err.category`). */
  readonly category: ErrorCategory;
  /** The class every error with this code is an instance of (`err.name`). */
  readonly className: string;
  /** The CLI's exit code for it. */
  readonly exitCode: number;
  /** What the code means. */
  readonly meaning: string;
}

/** Every error code: its category, class, CLI exit code and meaning. */
export const ERROR_CODES: Readonly<Record<ErrorCode, ErrorCodeInfo>> = Object.freeze(
  Object.fromEntries(
    Object.entries(CODE_TABLE).map(([code, [category, meaning]]) => [
      code,
      Object.freeze({ category, className: CLASS_NAMES[category], exitCode: EXIT_CODES[category], meaning }),
    ]),
  ) as Record<ErrorCode, ErrorCodeInfo>,
);

/** Options every tsgraph error takes. */
export interface ErrorOptions {
  /** The error this one wraps (kept as `err.cause`). */
  cause?: unknown;
  /** Structured details (names, paths, errno) for programs and `--json`. */
  data?: Record<string, unknown>;
}

/**
 * Base class of every error tsgraph throws on purpose, and the class of the
 * `error` category (TSG_INTERNAL, TSG_INVALID_LAYER, TSG_DRIVER_MISMATCH).
 * `new TsgraphError(code, …)` with a code of another category returns an
 * instance of that category's class (see {@link errorFromCode}), so a code
 * always comes with the same class, whoever built it.
 */
export class TsgraphError extends Error {
  /** The stable code (see {@link ERROR_CODES}). */
  readonly code: ErrorCode;
  /** Structured details. */
  readonly data: Record<string, unknown>;
  /** Category name, used for exit codes and JSON output. */
  readonly category: ErrorCategory = 'error';

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.data = options.data ?? {};
    // The base class asked for a code of another category (a code known only at run time, say):
    // the instance is that category's class instead, so a code never comes with two classes.
    const category = Object.hasOwn(CODE_TABLE, code) ? CODE_TABLE[code][0] : 'error';
    if (new.target === TsgraphError && category !== 'error') return errorFromCode(code, message, options);
  }

  /** `{code, category, message, data}`: what `--json` prints. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, category: this.category, message: this.message, data: this.data };
  }
}

/** The caller asked for something malformed (bad flag, bad reference, bad digest). */
export class UsageError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'usage'>;
  override readonly category = 'usage';
  constructor(code: ErrorCodeOf<'usage'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
/** The named thing does not exist (image, container, repo, tag, blob, platform). */
export class NotFoundError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'not-found'>;
  override readonly category = 'not-found';
  constructor(code: ErrorCodeOf<'not-found'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
/** Credentials missing, wrong, or not allowed to do this. */
export class AuthError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'auth'>;
  override readonly category = 'auth';
  constructor(code: ErrorCodeOf<'auth'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
/** Bytes do not match what their descriptor promised, or a manifest is malformed. Nothing was stored. */
export class IntegrityError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'integrity'>;
  override readonly category = 'integrity';
  constructor(code: ErrorCodeOf<'integrity'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** Extra options of a {@link RegistryError}. */
export interface RegistryErrorOptions extends ErrorOptions {
  /** HTTP status, when the registry answered. */
  status?: number;
  /** Error codes from the registry's JSON body (`MANIFEST_UNKNOWN`, …). */
  registryCodes?: string[];
  /** True when trying again later may succeed. */
  temporary?: boolean;
}

/** Network or registry failure (unreachable, TLS, HTTP errors, throttling, timeouts). */
export class RegistryError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'registry'>;
  override readonly category = 'registry';
  /** HTTP status, when the registry answered. */
  readonly status: number | undefined;
  /** Error codes from the registry's JSON body (`MANIFEST_UNKNOWN`, …). */
  readonly registryCodes: string[];
  /** True when trying again later may succeed. */
  readonly temporary: boolean;

  constructor(code: ErrorCodeOf<'registry'>, message: string, options: RegistryErrorOptions = {}) {
    super(code, message, options);
    this.status = options.status;
    this.registryCodes = options.registryCodes ?? [];
    this.temporary = options.temporary ?? false;
  }

  /** Adds `status`, `registryCodes` and `temporary` to the base JSON. */
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), status: this.status, registryCodes: this.registryCodes, temporary: this.temporary };
  }
}
/** The input is valid but tsgraph (or this kernel) does not handle it. */
export class UnsupportedError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'unsupported'>;
  override readonly category = 'unsupported';
  constructor(code: ErrorCodeOf<'unsupported'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
/** Hostile or malformed content tried to escape its root. */
export class UnsafeError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'unsafe'>;
  override readonly category = 'unsafe';
  constructor(code: ErrorCodeOf<'unsafe'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
/** Something is in use, taken or locked. */
export class BusyError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'busy'>;
  override readonly category = 'busy';
  constructor(code: ErrorCodeOf<'busy'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
/** The machine ran out of something: disk space or quota (ENOSPC, EDQUOT). Nothing half-stored. */
export class ResourceError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'resource'>;
  override readonly category = 'resource';
  constructor(code: ErrorCodeOf<'resource'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** The operation was cancelled: the caller's AbortSignal fired (Ctrl-C or SIGTERM in the CLI). */
export class InterruptedError extends TsgraphError {
  declare readonly code: ErrorCodeOf<'interrupted'>;
  override readonly category = 'interrupted';
  constructor(code: ErrorCodeOf<'interrupted'>, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** The class of each category. */
export const ERROR_CLASSES = {
  error: TsgraphError,
  usage: UsageError,
  'not-found': NotFoundError,
  auth: AuthError,
  integrity: IntegrityError,
  registry: RegistryError,
  unsupported: UnsupportedError,
  unsafe: UnsafeError,
  busy: BusyError,
  resource: ResourceError,
  interrupted: InterruptedError,
} as const satisfies Record<ErrorCategory, new (code: never, message: string, options?: ErrorOptions) => TsgraphError>;

/**
 * An error for `code` of its category's class: for codes known only at run
 * time (an error message from a worker thread, a code in JSON). An unknown
 * code becomes TSG_INTERNAL.
 */
export function errorFromCode(code: string, message: string, options: ErrorOptions = {}): TsgraphError {
  const row = Object.hasOwn(CODE_TABLE, code) ? CODE_TABLE[code as ErrorCode] : undefined;
  if (!row) return new TsgraphError('TSG_INTERNAL', message, { ...options, data: { ...options.data, code } });
  if (row[0] === 'error') return new TsgraphError(code as ErrorCode, message, options);
  const Class = ERROR_CLASSES[row[0]] as new (code: ErrorCode, message: string, options?: ErrorOptions) => TsgraphError;
  return new Class(code as ErrorCode, message, options);
}

/** True when `code` is one of tsgraph's error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(CODE_TABLE, code);
}

/** Wraps anything thrown into a TsgraphError (keeping the original as cause). */
export function toTsgraphError(err: unknown): TsgraphError {
  if (err instanceof TsgraphError) return err;
  if (isAbortError(err)) return new InterruptedError('TSG_ABORTED', 'operation aborted', { cause: err });
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

/** True for an AbortError (from an AbortSignal, fetch, a stream) by name or code. */
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
    throw new InterruptedError('TSG_ABORTED', 'operation aborted', { cause: signal.reason });
  }
}
