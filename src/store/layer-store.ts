/**
 * The layer store: which image layers are unpacked in the driver.
 * `meta/layers/<chainId hex>.json` per layer, written `incomplete: true`
 * before any work and rewritten complete last. At open, anything still
 * incomplete (a crash mid-unpack) is removed from the driver and forgotten.
 * The driver id of a layer is its chainId's hex.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { ContentStore } from '../content/store.js';
import { type Digest, hexOf, isDigest } from '../digest.js';
import { type RecordScan, isObject, isOptionalDigest, removeRecordFile, scanRecords } from './records.js';
import type { GraphDriver } from '../drivers/driver.js';
import { TsgraphError, fromSystemError, UnsupportedError } from '../errors.js';
import { chainIds } from '../layer/chain.js';
import { checkDiffId, openLayerTar } from '../layer/unpack.js';
import { layerCompression } from '../oci/media-types.js';
import { readJsonIfExists, writeJsonAtomic } from '../util/fs-atomic.js';
import type { ImageRecord } from './image-store.js';
import { acquireLock } from './lock.js';
import { crashPoint } from '../util/crash-point.js';

export interface LayerMetaRecord {
  chainId: Digest;
  diffId: Digest;
  parent: Digest | undefined;
  /** Blob it was unpacked from. */
  blob: Digest;
  driver: string;
  /** Bytes of file content written. */
  size: number;
  incomplete: boolean;
  createdAt: string;
}

export type UnpackEvent =
  | { type: 'unpack-start'; chainId: Digest; digest: Digest; index: number; total: number }
  | { type: 'unpack-done'; chainId: Digest; digest: Digest; size: number }
  | { type: 'unpack-exists'; chainId: Digest; digest: Digest };

export class LayerStore {
  readonly dir: string;
  readonly lockDir: string;

  constructor(
    root: string,
    readonly driver: GraphDriver,
  ) {
    this.dir = join(root, 'meta', 'layers');
    this.lockDir = join(root, 'locks');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  static driverId(chainId: Digest): string {
    return hexOf(chainId);
  }

  #path(chainId: Digest): string {
    return join(this.dir, `${hexOf(chainId)}.json`);
  }

  get(chainId: Digest): LayerMetaRecord | undefined {
    return readJsonIfExists<LayerMetaRecord>(this.#path(chainId));
  }

  isComplete(chainId: Digest): boolean {
    const m = this.get(chainId);
    return !!m && !m.incomplete && this.driver.exists(LayerStore.driverId(chainId));
  }

  list(): LayerMetaRecord[] {
    return this.scan().records;
  }

  /** Valid records, and the files that are not (see records.ts). */
  scan(): RecordScan<LayerMetaRecord> {
    return scanRecords(this.dir, (file, v): v is LayerMetaRecord =>
      isObject(v) && isDigest(v.chainId) && file === `${hexOf(v.chainId)}.json` && isDigest(v.diffId) && isOptionalDigest(v.parent) && isDigest(v.blob),
    );
  }

  /** Deletes a record file that is not a valid record (check --repair). */
  removeInvalid(file: string): void {
    removeRecordFile(this.dir, file);
  }

  /** Drops the record of a layer already removed from the driver. */
  forget(chainId: Digest): void {
    fs.rmSync(this.#path(chainId), { force: true });
  }

  /** The chainId of an image's top layer (undefined for an image with no layers). */
  static topChainId(image: ImageRecord): Digest | undefined {
    return chainIds(image.layers.map((l) => l.diffId)).at(-1);
  }

  /** Removes layers a crash left incomplete. Returns their chainIds. */
  async repair(): Promise<Digest[]> {
    const removed: Digest[] = [];
    for (const m of this.list()) {
      if (!m.incomplete) continue;
      const lock = await acquireLock(this.lockDir, `layer-${hexOf(m.chainId)}`, { timeoutMs: 0 }).catch(() => undefined);
      if (!lock) continue; // someone is unpacking it right now
      try {
        await this.#drop(m.chainId);
        removed.push(m.chainId);
      } finally {
        lock.release();
      }
    }
    await this.driver.cleanup();
    return removed;
  }

  async #drop(chainId: Digest): Promise<void> {
    const id = LayerStore.driverId(chainId);
    if (this.driver.exists(id)) await this.driver.remove(id);
    fs.rmSync(this.#path(chainId), { force: true });
  }

  /** Unpacks every layer of `image` not yet in the driver, bottom up. */
  async unpack(
    image: ImageRecord,
    content: ContentStore,
    options: { signal?: AbortSignal | undefined; onEvent?: ((e: UnpackEvent) => void) | undefined } = {},
  ): Promise<{ unpacked: number; reused: number }> {
    const chain = chainIds(image.layers.map((l) => l.diffId));
    let unpacked = 0;
    let reused = 0;
    for (let i = 0; i < chain.length; i++) {
      const chainId = chain[i]!;
      const parent = i > 0 ? chain[i - 1] : undefined;
      const layer = image.layers[i]!;
      if (this.isComplete(chainId)) {
        reused++;
        options.onEvent?.({ type: 'unpack-exists', chainId, digest: layer.digest });
        continue;
      }
      const lock = await acquireLock(this.lockDir, `layer-${hexOf(chainId)}`, { signal: options.signal, timeoutMs: 30 * 60_000 });
      try {
        if (this.isComplete(chainId)) {
          reused++;
          continue;
        }
        await this.#drop(chainId); // leftovers of an earlier failed attempt
        options.onEvent?.({ type: 'unpack-start', chainId, digest: layer.digest, index: i, total: chain.length });
        const size = await this.#unpackOne(chainId, parent, layer, content, options.signal);
        options.onEvent?.({ type: 'unpack-done', chainId, digest: layer.digest, size });
        unpacked++;
      } finally {
        lock.release();
      }
    }
    return { unpacked, reused };
  }

  async #unpackOne(
    chainId: Digest,
    parent: Digest | undefined,
    layer: ImageRecord['layers'][number],
    content: ContentStore,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    const compression = layerCompression(layer.mediaType);
    if (!compression) throw new UnsupportedError('TSG_UNSUPPORTED', `layer ${layer.digest} has unsupported media type ${layer.mediaType}`);
    const meta: LayerMetaRecord = {
      chainId,
      diffId: layer.diffId,
      parent,
      blob: layer.digest,
      driver: this.driver.name,
      size: 0,
      incomplete: true,
      createdAt: new Date().toISOString(),
    };
    writeJsonAtomic(this.#path(chainId), meta);
    const id = LayerStore.driverId(chainId);
    const parentId = parent ? LayerStore.driverId(parent) : undefined;
    const { tar, tap, done } = openLayerTar(content.reader(layer.digest), compression);
    done.catch(() => {}); // observed below; avoid an unhandled rejection meanwhile
    try {
      await this.driver.create(id, parentId);
      crashPoint('pull:layer-created');
      const result = await this.driver.applyDiff(id, parentId, tar, { signal, pax: tap.pax });
      tar.resume(); // whatever follows the end-of-archive still counts for the diffId
      await done;
      checkDiffId(tap, layer.diffId, layer.digest);
      crashPoint('pull:layer-applied'); // tests: the whole tree is there, still marked incomplete
      meta.size = result.size;
      meta.incomplete = false;
      writeJsonAtomic(this.#path(chainId), meta);
      crashPoint('pull:layer-complete');
      return result.size;
    } catch (err) {
      tar.destroy();
      await this.#drop(chainId).catch(() => {});
      if (err instanceof TsgraphError) throw err;
      throw fromSystemError(err) ?? new TsgraphError('TSG_INVALID_LAYER', `unpacking layer ${layer.digest} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}
