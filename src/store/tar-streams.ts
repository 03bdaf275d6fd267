/**
 * Container contents as tar streams, for runtimes:
 *  - the diff: the container's changes as an OCI layer tar (what
 *    `tsgraph diff -o` writes and commit compresses), optionally compressed;
 *  - the export: the container's whole merged tree as a flat tar (no
 *    whiteouts), like `docker export`.
 * Both read the live container the way diff and commit do (layer/generate.ts
 * through util/safe-dir.ts): dirfd walk, O_NOFOLLOW, fstat of the opened fd,
 * content from that fd; a file a container swaps for a symlink is exported
 * as the symlink, never read through.
 *
 * The stream is handed out while the container's owner lock is held shared
 * (an `rm` waits until the stream closes): consume it to the end or destroy
 * it. Mounts taken for the read (a naive overlay diff, an overlay export) are
 * released when it closes.
 */
import { type Readable, Transform, pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GraphDriver } from '../drivers/driver.js';
import { hexOf } from '../digest.js';
import { InterruptedError, toTsgraphError } from '../errors.js';
import { naiveChanges } from '../layer/changes.js';
import { compressionStage } from '../layer/compress.js';
import { generateLayerTar } from '../layer/generate.js';
import type { Compression } from '../oci/media-types.js';
import type { ContainerRecord } from './containers.js';
import { diffLayer, diffTar } from './differ.js';

/** Progress of a tar stream: bytes handed to the reader so far. */
export interface TarStreamProgress {
  /** Bytes handed to the reader so far. */
  bytes: number;
  /** True on the last event (the stream ended). */
  done: boolean;
}

/** Options of the tar streams (Store.diffStream, Store.exportContainer). */
export interface TarStreamOptions {
  /** Destroys the stream with TSG_ABORTED (and releases what it holds). */
  signal?: AbortSignal | undefined;
  /** Called as bytes go out (at most every 1 MiB, and once at the end). */
  onProgress?: ((progress: TarStreamProgress) => void) | undefined;
}

/** Options of Store.diffStream. */
export interface DiffStreamOptions extends TarStreamOptions {
  /** `none` (default: the plain layer tar, as `tsgraph diff -o`), `gzip` or `zstd` (a layer blob, as commit makes). */
  compression?: Compression | undefined;
}

const PROGRESS_EVERY = 1 << 20;

/** Counts bytes for onProgress; passes them through unchanged. */
function progressCounter(onProgress: TarStreamOptions['onProgress']): Transform {
  let bytes = 0;
  let reported = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (onProgress && bytes - reported >= PROGRESS_EVERY) {
        reported = bytes;
        onProgress({ bytes, done: false });
      }
      cb(null, chunk);
    },
    flush(cb) {
      onProgress?.({ bytes, done: true });
      cb();
    },
  });
}

/**
 * `source` → [stages] → the stream the caller gets, which ends or fails with
 * the source; destroying it (or the signal) destroys the source, which
 * releases what the source holds.
 */
function outputOf(source: Readable, stages: NodeJS.ReadWriteStream[], options: TarStreamOptions): Readable {
  const out = progressCounter(options.onProgress);
  const streams = [source, ...stages, out] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream];
  pipeline(streams, () => {
    /* errors reach `out` (pipeline destroys every stream with the error) */
  });
  const signal = options.signal;
  if (signal) {
    const abort = () => out.destroy(new InterruptedError('TSG_ABORTED', 'operation aborted', { cause: signal.reason }));
    signal.addEventListener('abort', abort, { once: true });
    out.once('close', () => signal.removeEventListener('abort', abort));
  }
  return out;
}

/**
 * Releases the export's read-only mount. A reader that stops early closes the
 * tar before the walk has closed its fds (a file's read stream closes its fd
 * on the thread pool), so the first umount can meet EBUSY: it is tried again,
 * a bounded number of times, instead of leaving the mount behind.
 */
async function putWhenIdle(driver: GraphDriver, id: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await driver.put(id);
      return;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (attempt >= 40 || (code !== 'TSG_IN_USE' && code !== 'EBUSY')) return; // check/gc report a mount that stayed
      await sleep(Math.min(10 * (attempt + 1), 100));
    }
  }
}

/** Runs `fn` for a held container and resolves its stream, keeping the hold until the stream closes. */
export type ContainerHold = (fn: (record: ContainerRecord) => Promise<void>) => Promise<void>;

/**
 * Resolves with the stream `make` builds for the container, while `hold`
 * keeps the container held until the stream has closed. A failure before the
 * stream exists rejects; one after it destroys the stream.
 */
export function heldStream(hold: ContainerHold, make: (record: ContainerRecord) => Promise<Readable>): Promise<Readable> {
  return new Promise((resolve, reject) => {
    let out: Readable | undefined;
    hold(async (record) => {
      out = await make(record);
      const closed = new Promise<void>((r) => out!.once('close', () => r()));
      resolve(out);
      await closed;
    }).catch((err: unknown) => {
      if (out) out.destroy(toTsgraphError(err));
      else reject(toTsgraphError(err));
    });
  });
}

/** The container's changes as a layer tar (compressed when asked). */
export async function containerDiffStream(driver: GraphDriver, record: ContainerRecord, options: DiffStreamOptions = {}): Promise<Readable> {
  options.signal?.throwIfAborted();
  const diff = await diffLayer(driver, record.id, record.parent ? hexOf(record.parent) : undefined);
  const compression = options.compression ?? 'none';
  const stages = compression === 'none' ? [] : [compressionStage(compression)];
  return outputOf(diffTar(diff), stages, options);
}

/**
 * The container's merged tree as a flat tar: a full-tree driver's own tree
 * (vfs, btrfs), else the container mounted once more read-only (overlay,
 * aufs) and released when the stream closes.
 */
export async function containerExportStream(driver: GraphDriver, record: ContainerRecord, options: TarStreamOptions = {}): Promise<Readable> {
  options.signal?.throwIfAborted();
  const full = driver.capabilities.layout === 'full';
  const root = full ? driver.layerPaths(record.id).own : await driver.get(record.id, { readOnly: true });
  let released = full;
  const release = () => {
    if (released) return;
    released = true;
    void putWhenIdle(driver, record.id);
  };
  let tar: Readable;
  try {
    // Every entry, parents first, found through the same no-follow dirfd walk as the naive diff.
    tar = generateLayerTar(naiveChanges(undefined, root), { root, source: 'tree' });
  } catch (err) {
    release();
    throw err;
  }
  tar.once('close', release);
  const out = outputOf(tar, [], options);
  out.once('close', release);
  return out;
}
