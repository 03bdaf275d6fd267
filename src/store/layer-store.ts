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
import { TsgraphError } from '../errors.js';
import { chainIds } from '../layer/chain.js';
import { readJsonIfExists, writeJsonAtomic } from '../util/fs-atomic.js';
import type { ImageRecord } from './image-store.js';
import { acquireLock } from './lock.js';
import { type UnpackOptions, unpackLayers } from './layer-unpack.js';

export type { LayerFetch, UnpackOptions } from './layer-unpack.js';

/** The record of an unpacked image layer (`meta/layers/<chainId hex>.json`). */
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

/** A progress event of unpacking layers (start, done, already there). */
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
    // Children first: a parallel pull leaves a half layer on a half parent, and a parent goes only once nothing stands on it.
    const incomplete = this.list().filter((m) => m.incomplete);
    const byId = new Map(incomplete.map((m) => [m.chainId, m]));
    const depth = (m: LayerMetaRecord): number => {
      let d = 0;
      for (let p = m.parent; p && byId.has(p) && d < 4096; p = byId.get(p)!.parent) d++;
      return d;
    };
    incomplete.sort((a, b) => depth(b) - depth(a));
    for (const m of incomplete) {
      const lock = await acquireLock(this.lockDir, `layer-${hexOf(m.chainId)}`, { timeoutMs: 0 }).catch(() => undefined);
      if (!lock) continue; // someone is unpacking it right now
      try {
        await this.#drop(m.chainId);
        removed.push(m.chainId);
      } catch (err) {
        // A child another process is still unpacking stands on it: the next repair takes it.
        if (!(err instanceof TsgraphError && err.code === 'TSG_IN_USE')) throw err;
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

  /**
   * Unpacks every layer of `image` not yet in the driver (see layer-unpack.ts):
   * one streaming pass per layer, from `options.fetch` (a download teed into
   * the content store) or from the stored blob. Overlay-style layers apply in
   * parallel; full-tree layers (vfs, btrfs) in order.
   */
  async unpack(image: ImageRecord, content: ContentStore, options: UnpackOptions = {}): Promise<{ unpacked: number; reused: number }> {
    return unpackLayers(
      {
        driver: this.driver,
        content,
        lockDir: this.lockDir,
        isComplete: (c) => this.isComplete(c),
        drop: (c) => this.#drop(c),
        writeMeta: (m) => writeJsonAtomic(this.#path(m.chainId), m),
      },
      image,
      options,
    );
  }
}
