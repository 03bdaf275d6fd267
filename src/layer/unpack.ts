/**
 * One pass from a layer blob to its tar:
 *   blob → magic check → decompress → sha256 (diffId) → TarScanner (strict headers, raw PAX,
 *   nothing after the end marker) → the tar stream a driver's applyDiff reads.
 * Decompression and hashing run in a worker thread (inflate-pool.ts) so the main thread
 * keeps only the scan and the apply; the TarScanner always runs here, on every byte in
 * order. If no worker can start, the same pipeline runs in this thread.
 * The diffId must match the config's; on mismatch the caller drops the layer.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../digest.js';
import { IntegrityError } from '../errors.js';
import type { Compression } from '../oci/media-types.js';
import { decompressionStages } from './compression.js';
import { inflateInWorker, toLayerError, workersUsable } from './inflate-pool.js';
import { type PaxRecords, TarTap } from './pax.js';
import { TarScanner, markScanned } from './tar-scan.js';

/** What the tar carried besides its entries: raw PAX records (as it streams) and its diffId (after `done`). */
export interface LayerTap {
  readonly pax: PaxRecords;
  /** sha256 of every decompressed byte, trailer after the end marker included; valid once `done` resolved. */
  readonly digest: Digest;
}

export interface UnpackedTar {
  /** The uncompressed tar, up to its end marker, to hand to a driver's applyDiff. */
  tar: Readable;
  tap: LayerTap;
  /** Settles when the whole blob went through; rejects (TsgraphError) on decompression or tar errors. */
  done: Promise<void>;
}

/** `thread`: everything in this thread (the fallback); `worker`: decompress + hash in the inflate pool. */
export type InflateMode = 'thread' | 'worker';

export interface OpenLayerTarOptions {
  mode?: InflateMode;
}

class Tap implements LayerTap {
  #digest: Digest | undefined;
  constructor(readonly pax: PaxRecords) {}
  get digest(): Digest {
    if (!this.#digest) throw new Error('layer tap: the blob has not been read to the end');
    return this.#digest;
  }
  set digest(d: Digest) {
    this.#digest = d;
  }
}

/**
 * Measured (bench/inflate-bench.ts, docs/benchmarks.md): the worker wins for gzip and zstd.
 * An uncompressed blob only needs hashing; it goes to the worker too unless told otherwise.
 * TSGRAPH_INFLATE=thread|worker overrides (benchmarks, or to rule the worker out).
 */
function defaultMode(): InflateMode {
  const env = process.env.TSGRAPH_INFLATE;
  return env === 'thread' || env === 'worker' ? env : 'worker';
}

/** Builds the decompress + hash + scan pipeline for a blob stream. */
export function openLayerTar(blob: Readable, compression: Compression, opts: OpenLayerTarOptions = {}): UnpackedTar {
  const scanner = new TarScanner();
  const tap = new Tap(scanner.records);
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  // `out` carries only what the scanner checked and passed (up to the end marker): applyTar may trust it.
  markScanned(out, tap.pax);
  const mode = opts.mode ?? defaultMode();
  const done =
    mode === 'worker' && workersUsable()
      ? inflateInWorker(blob, compression, scanner, out).then((job) =>
          job ? job.done.then((digest) => void (tap.digest = digest)) : inThread(blob, compression, scanner, out, tap),
        )
      : inThread(blob, compression, scanner, out, tap);
  return { tar: out, tap, done };
}

function inThread(blob: Readable, compression: Compression, scanner: TarScanner, out: PassThrough, tap: Tap): Promise<void> {
  const fail = (err: unknown): never => {
    const e = toLayerError(err);
    out.destroy(e);
    throw e;
  };
  let stages: NodeJS.ReadWriteStream[];
  try {
    stages = [...decompressionStages(compression), new TarTap(scanner)];
  } catch (err) {
    // A throw while building the pipeline (it is also the worker's fallback) must still end
    // both ends: the blob's reader and the tar's reader would otherwise wait forever.
    blob.destroy();
    return Promise.resolve().then(() => fail(err));
  }
  const tarTap = stages[stages.length - 1] as TarTap;
  return pipeline([blob, ...stages, out] as unknown as [Readable, PassThrough]).then(() => void (tap.digest = tarTap.digest), fail);
}

/** Throws TSG_DIGEST_MISMATCH when the tar's sha256 is not the config's diffId. */
export function checkDiffId(tap: { readonly digest: Digest }, expected: Digest, layer: string): void {
  if (tap.digest !== expected) {
    throw new IntegrityError('TSG_DIGEST_MISMATCH', `layer ${layer} unpacks to diffId ${tap.digest}, but the image config says ${expected}`, {
      data: { expected, actual: tap.digest, layer },
    });
  }
}
