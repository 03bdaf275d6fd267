/**
 * Unpacking an image's layers into the driver, one streaming pass per layer:
 *
 *   download (or the stored blob) → BlobTee → decompress → diffId tap → tar → driver.applyDiff
 *
 * while the same bytes go into the content store (download.ts). Nothing is
 * read twice, and the unpack of a layer overlaps its download.
 *
 * Order. A `diff`-layout driver (overlay, aufs) keeps each layer in a dir of
 * its own: layer N is created as soon as its parent's dir exists and applied
 * at once, in parallel with its parents. What it reads of them (the
 * attributes of a parent dir its tar does not list) is deferred to when they
 * are complete (DeferredLowerDirs), so the result is the sequential one. A
 * `full`-layout driver (vfs, btrfs) copies or snapshots the parent's tree: a
 * layer is created only once its parent is complete; its blob downloads into
 * the store meanwhile and is then streamed from there.
 *
 * Safety. A layer is marked `incomplete` before its dir is made and complete
 * only when its tar matched the diffId, its blob committed with the right
 * digest and size, and every parent is complete. On any failure every layer
 * this call made and did not complete is dropped, children first, and the
 * error is the first one that happened (its siblings are aborted). A crash
 * leaves the incomplete marks; the repair at open removes those layers.
 * Each layer is made under its flock `layer-<chainId hex>`, taken in chain
 * order and held until the end: two pulls sharing layers never both make one.
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { ContentStore } from '../content/store.js';
import { type Digest, hexOf } from '../digest.js';
import { DeferredLowerDirs } from '../drivers/overlay/lower-dir.js';
import type { OverlayXattrPrefix } from '../layer/whiteout.js';
import { singleIdNamespace } from '../layer/owner-override.js';
import type { GraphDriver } from '../drivers/driver.js';
import { InterruptedError, TsgraphError, UnsupportedError, fromSystemError, isAbortError } from '../errors.js';
import { chainIds } from '../layer/chain.js';
import { batchSupported } from '../layer/apply-batch.js';
import { checkDiffId, openLayerTar } from '../layer/unpack.js';
import { layerCompression } from '../oci/media-types.js';
import { crashPoint } from '../util/crash-point.js';
import { mapLimit } from '../util/map-limit.js';
import { removeTree } from '../util/safe-remove.js';
import { BlobTee } from './blob-tee.js';
import type { ImageRecord } from './image-store.js';
import type { LayerMetaRecord, UnpackEvent } from './layer-store.js';
import { type FileLock, acquireLock } from './lock.js';

/**
 * Makes sure blob `index` of the image is in the content store (downloading
 * it, resuming an ingest); with a tee, its bytes, from byte 0, also go to
 * the tee as they arrive.
 */
export type LayerFetch = (index: number, tee: BlobTee | undefined) => Promise<void>;

export interface UnpackOptions {
  signal?: AbortSignal | undefined;
  onEvent?: ((e: UnpackEvent) => void) | undefined;
  /** Where blobs come from when not stored yet; without it every blob must be in the store. */
  fetch?: LayerFetch | undefined;
  /** Layers in flight at once (default 3). */
  jobs?: number | undefined;
}

/** What unpackLayers needs of the LayerStore. */
export interface LayerStoreParts {
  driver: GraphDriver;
  content: ContentStore;
  lockDir: string;
  isComplete(chainId: Digest): boolean;
  /** Removes the layer from the driver and forgets its record. */
  drop(chainId: Digest): Promise<void>;
  writeMeta(meta: LayerMetaRecord): void;
}

/** A promise with its settle functions: "layer i's dir exists", "layer i is complete". */
class Gate {
  settled = false;
  resolve!: () => void;
  reject!: (err: unknown) => void;
  readonly promise = new Promise<void>((resolve, reject) => {
    this.resolve = () => {
      this.settled = true;
      resolve();
    };
    this.reject = (err) => {
      if (!this.settled) reject(err);
      this.settled = true;
    };
  });
  constructor() {
    this.promise.catch(() => {}); // observed by whoever waits; a failure nobody waits for is reported by its own task
  }
}

interface Held {
  lock: FileLock;
  chainId: Digest;
  /** This call made (or started making) the layer. */
  made: boolean;
  done: boolean;
}

const LAYER_LOCK_WAIT_MS = 30 * 60_000;
/** Errors about one layer's own bytes: the layers below it are not concerned. */
const LAYER_CONTENT_ERRORS = new Set(['TSG_DIGEST_MISMATCH', 'TSG_SIZE_MISMATCH', 'TSG_INVALID_LAYER', 'TSG_UNSAFE_PATH', 'TSG_UNSUPPORTED']);
const APPLY_STOP_WAIT_MS = 2_000;

export async function unpackLayers(parts: LayerStoreParts, image: ImageRecord, options: UnpackOptions = {}): Promise<{ unpacked: number; reused: number }> {
  const { driver } = parts;
  const chain = chainIds(image.layers.map((l) => l.diffId));
  // Single-id rootless: in order, so implicit dirs inherit their lower's owner record (layer/owner-override.ts).
  const parallel = driver.capabilities.layout === 'diff' && !singleIdNamespace();
  const created = chain.map(() => new Gate());
  const complete = chain.map(() => new Gate());
  const held: Array<Held | undefined> = [];
  const inner = new AbortController();
  // Per layer too: a layer whose own content is bad stops the layers above it (they cannot
  // complete), while the ones below run to the end — valid work a retry reuses, as a
  // sequential unpack would have kept it. Anything else (abort, full disk) stops them all.
  const above = chain.map(() => new AbortController());
  const signals = above.map((c) => AbortSignal.any([...(options.signal ? [options.signal] : []), inner.signal, c.signal]));
  let firstError: unknown;
  let unpacked = 0;
  let reused = 0;

  const reuse = async (i: number) => {
    created[i]!.resolve();
    complete[i]!.resolve();
    reused++;
    options.onEvent?.({ type: 'unpack-exists', chainId: chain[i]!, digest: image.layers[i]!.digest });
    await options.fetch?.(i, undefined); // the image keeps its blobs, as a pull without unpack would
  };

  const task = async (layer: ImageRecord['layers'][number], i: number): Promise<void> => {
    const signal = signals[i]!;
    const chainId = chain[i]!;
    const parent = i > 0 ? chain[i - 1] : undefined;
    try {
      if (parts.isComplete(chainId)) return await reuse(i);
      const lock = await acquireLock(parts.lockDir, `layer-${hexOf(chainId)}`, { signal, timeoutMs: LAYER_LOCK_WAIT_MS });
      held[i] = { lock, chainId, made: false, done: false };
      if (parts.isComplete(chainId)) return await reuse(i);
      const compression = layerCompression(layer.mediaType);
      if (!compression) throw new UnsupportedError('TSG_UNSUPPORTED', `layer ${layer.digest} has unsupported media type ${layer.mediaType}`);

      // Overlay needs the parent's dir to exist; vfs/btrfs copy the parent's finished tree.
      const parentGate = i === 0 ? undefined : parallel ? created[i - 1]! : complete[i - 1]!;
      // Teed when the unpack can start right away; else the blob goes to the store first.
      const tee = options.fetch && (parallel || !parentGate || parentGate.settled) ? new BlobTee() : undefined;
      const blob = options.fetch ? options.fetch(i, tee) : Promise.resolve();
      blob.catch(() => {}); // awaited below; a download error also reaches the unpack through the tee
      if (parentGate) await parentGate.promise;
      if (!tee) await blob;

      await parts.drop(chainId); // leftovers of an earlier failed attempt
      options.onEvent?.({ type: 'unpack-start', chainId, digest: layer.digest, index: i, total: chain.length });
      held[i]!.made = true;
      const meta: LayerMetaRecord = {
        chainId,
        diffId: layer.diffId,
        parent,
        blob: layer.digest,
        driver: driver.name,
        size: 0,
        incomplete: true,
        createdAt: new Date().toISOString(),
      };
      parts.writeMeta(meta);
      const id = hexOf(chainId);
      const parentId = parent ? hexOf(parent) : undefined;
      await driver.create(id, parentId);
      const own = driver.layerPaths(id).own;
      const fresh = fs.lstatSync(own);
      created[i]!.resolve();
      crashPoint('pull:layer-created');

      const apply = async (input: Readable, lower: DeferredLowerDirs | undefined, cut: Promise<never> | undefined): Promise<number> => {
        const { tar, tap, done } = openLayerTar(input, compression);
        done.catch(() => {}); // observed below
        const work = (async () => {
          const result = await driver.applyDiff(id, parentId, tar, { signal, pax: tap.pax, lowerDir: lower?.lowerDir, explicitDir: lower?.explicitDir });
          tar.resume(); // whatever follows the end-of-archive still counts for the diffId
          await done;
          checkDiffId(tap, layer.diffId, layer.digest);
          return result.size;
        })();
        work.catch(() => {}); // observed below
        try {
          // A failed download stops the unpack at once, whatever the decompressor makes of its cut stream.
          return await (cut ? Promise.race([work, cut]) : work);
        } catch (err) {
          const e = tee?.error ?? err; // a failed download explains a cut tar better than the tar does
          tar.destroy(e instanceof Error ? e : new Error(String(e)));
          // The input is not destroyed: a cut tee was ended (a decompressor still starting reads an end,
          // not a destroy), and a download still feeding it stops on the pull's abort.
          // Nothing may write into the layer once we drop or restart it: let the apply stop. Bounded,
          // because applyTar can stay parked inside an entry whose body the destroyed tar never ends
          // (parked is harmless: it writes nothing more).
          await Promise.race([work.catch(() => {}), delay(APPLY_STOP_WAIT_MS, undefined, { ref: false })]);
          throw e;
        }
      };
      // Parents still being applied: what this layer reads of them waits until they are complete.
      const deferLower = () => (parallel && batchSupported() && i > 0 && !complete[i - 1]!.settled ? new DeferredLowerDirs(own, (driver as { xattrPrefix?: OverlayXattrPrefix }).xattrPrefix) : undefined);
      let lower = deferLower();
      let size: number;
      try {
        size = await apply(tee ? tee.stream : parts.content.reader(layer.digest), lower, tee?.cut);
      } catch (err) {
        if (!tee?.restarted) throw err;
        // The source sent the blob again from byte 0: what was applied is worthless. Once the
        // blob is stored (and verified), start the layer over from there.
        await blob;
        await restartLayer(driver, id, parentId, own, fresh);
        lower = deferLower();
        size = await apply(parts.content.reader(layer.digest), lower, undefined);
      }
      await blob; // committed: digest and size verified
      if (i > 0) await complete[i - 1]!.promise;
      await lower?.settle(driver.layerPaths(id).parents);
      crashPoint('pull:layer-applied'); // tests: the whole tree is there, still marked incomplete
      meta.size = size;
      meta.incomplete = false;
      parts.writeMeta(meta);
      crashPoint('pull:layer-complete');
      held[i]!.done = true;
      complete[i]!.resolve();
      unpacked++;
      options.onEvent?.({ type: 'unpack-done', chainId, digest: layer.digest, size });
    } catch (err) {
      const e = asUnpackError(err, layer.digest);
      firstError ??= e;
      created[i]!.reject(e);
      complete[i]!.reject(e);
      if (e instanceof TsgraphError && LAYER_CONTENT_ERRORS.has(e.code)) for (let j = i + 1; j < chain.length; j++) above[j]!.abort(e);
      else inner.abort(e); // every sibling stops: the pull fails anyway
    }
  };

  try {
    // Every task settles before the half layers are dropped below (one still applying is never
    // removed under its feet); the first error is the pull's.
    await mapLimit(image.layers, Math.max(1, options.jobs ?? 3), task);
    if (firstError) throw firstError;
  } finally {
    // Children first: a half layer goes before the half parent it stands on; the locks last.
    for (let i = chain.length - 1; i >= 0; i--) {
      const h = held[i];
      if (!h) continue;
      if (h.made && !h.done) await parts.drop(h.chainId).catch(() => {}); // else the incomplete mark stays for repair
    }
    for (const h of held) h?.lock.release();
  }
  return { unpacked, reused };
}

/** Empties a half-applied layer for a second attempt. */
async function restartLayer(driver: GraphDriver, id: string, parentId: string | undefined, own: string, fresh: fs.Stats): Promise<void> {
  if (driver.capabilities.layout === 'full') {
    // Nothing stands on it yet (children wait for it to complete): make it anew from the parent.
    await driver.remove(id);
    await driver.create(id, parentId);
    return;
  }
  // Children may already stand on it: keep the layer, empty its own dir as create() left it.
  removeTree(own);
  fs.mkdirSync(own, { mode: fresh.mode & 0o7777 });
  fs.chownSync(own, fresh.uid, fresh.gid);
  fs.chmodSync(own, fresh.mode & 0o7777);
}

function asUnpackError(err: unknown, digest: Digest): unknown {
  if (err instanceof TsgraphError) return err;
  if (isAbortError(err)) return new InterruptedError('TSG_ABORTED', 'pull aborted', { cause: err });
  return fromSystemError(err) ?? new TsgraphError('TSG_INVALID_LAYER', `unpacking layer ${digest} failed: ${(err as Error).message}`, { cause: err });
}
