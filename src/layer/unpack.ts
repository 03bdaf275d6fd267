/**
 * One pass from a stored layer blob to an applied tree:
 *   blob → magic check → decompress → TarTap (sha256 = diffId, raw PAX) → tar-stream → applier.
 * The diffId must match the config's; on mismatch the caller drops the layer.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../digest.js';
import { IntegrityError, TsgraphError, fromSystemError } from '../errors.js';
import type { Compression } from '../oci/media-types.js';
import { decompressionStages } from './compression.js';
import { TarTap } from './pax.js';
import { markScanned } from './tar-scan.js';

export interface UnpackedTar {
  /** The uncompressed tar, to hand to a driver's applyDiff. */
  tar: Readable;
  tap: TarTap;
  /** Settles when the whole blob went through; rejects on decompression errors. */
  done: Promise<void>;
}

/** Builds the decompress + tap pipeline for a blob stream. */
export function openLayerTar(blob: Readable, compression: Compression): UnpackedTar {
  const tap = new TarTap();
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const done = pipeline([blob, ...decompressionStages(compression), tap, out] as unknown as [Readable, PassThrough]).catch((err: unknown) => {
    const e = err instanceof TsgraphError ? err : fromSystemError(err) ?? new TsgraphError('TSG_INVALID_LAYER', `layer blob does not decompress: ${(err as Error).message}`, { cause: err });
    out.destroy(e);
    throw e;
  });
  // `out` carries only what the tap scanned and passed (up to the end marker): applyTar may trust it.
  markScanned(out, tap.pax);
  return { tar: out, tap, done };
}

/** Throws TSG_DIGEST_MISMATCH when the tar's sha256 is not the config's diffId. */
export function checkDiffId(tap: TarTap, expected: Digest, layer: string): void {
  if (tap.digest !== expected) {
    throw new IntegrityError('TSG_DIGEST_MISMATCH', `layer ${layer} unpacks to diffId ${tap.digest}, but the image config says ${expected}`, {
      data: { expected, actual: tap.digest, layer },
    });
  }
}
