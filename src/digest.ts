/**
 * Digests: `sha256:<64 lowercase hex>`. tsgraph stores and verifies sha256
 * only; other algorithms are refused clearly rather than trusted blindly.
 */
import { createHash, type Hash } from 'node:crypto';
import { UnsupportedError, UsageError } from './errors.js';

/** A content digest, `sha256:<64 hex>`. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const SHA256_HEX_RE = /^[a-f0-9]{64}$/;

/** Validates a digest string; throws TSG_INVALID_DIGEST or TSG_UNSUPPORTED. */
export function parseDigest(value: string): Digest {
  const m = DIGEST_RE.exec(value);
  if (!m) throw new UsageError('TSG_INVALID_DIGEST', `invalid digest ${JSON.stringify(value)}`);
  const [, algorithm, encoded] = m;
  if (algorithm !== 'sha256') {
    throw new UnsupportedError('TSG_UNSUPPORTED', `digest algorithm ${algorithm} is not supported (only sha256)`, {
      data: { digest: value },
    });
  }
  if (!SHA256_HEX_RE.test(encoded!)) {
    throw new UsageError('TSG_INVALID_DIGEST', `invalid sha256 digest ${JSON.stringify(value)}`);
  }
  return value as Digest;
}

/** True for a `sha256:<64 lowercase hex>` string. */
export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && value.startsWith('sha256:') && SHA256_HEX_RE.test(value.slice(7));
}

/** The hex part of a digest. */
export function hexOf(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** Short form for humans: first 12 hex characters. */
export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/** The sha256 digest of `data` (`sha256:<hex>`). */
export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The sha256 of `data` as 64 hex characters. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A streaming sha256 hasher (see digestOfHasher). */
export function newHasher(): Hash {
  return createHash('sha256');
}

/** The digest of what a newHasher() was fed. */
export function digestOfHasher(hash: Hash): Digest {
  return `sha256:${hash.digest('hex')}`;
}
