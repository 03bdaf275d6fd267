/**
 * Mounting images as containers: a writable layer on the image's top layer,
 * mounted through the driver, recorded by name.
 *
 * Crash safety (a `kill -9` may land between any two steps): the name is
 * claimed first, atomically, with a record in state `creating` that already
 * names the layer id; the layer is then made and mounted (the driver counts
 * a mount before it exists), and the record loses its state last. While it
 * works, the creating process holds `locks/creating-<id>.lock`; a record
 * still `creating` whose lock nobody holds is a crash leftover, and repair()
 * removes it with whatever of its layer exists (unmounted first). `rm` marks
 * the record `removing` before it touches the layer, so a kill mid-removal
 * leaves a record that repair finishes removing, never a live-looking record
 * whose layer is gone.
 */
import * as fs from 'node:fs';
import type { ContentStore } from '../content/store.js';
import { hexOf } from '../digest.js';
import type { GraphDriver } from '../drivers/driver.js';
import { BusyError, NotFoundError } from '../errors.js';
import { isMountPoint } from '../mount/index.js';
import { crashPoint, pausePoint } from '../util/crash-point.js';
import { ContainerStore, type ContainerRecord } from './containers.js';
import type { ImageRecord } from './image-store.js';
import { LayerStore } from './layer-store.js';
import { acquireLock, type FileLock } from './lock.js';

export interface MountRequest {
  /** Container name (default: `<image>-<6 hex>`). */
  name?: string | undefined;
  readOnly?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

export interface MountResult {
  container: ContainerRecord;
  /** The root filesystem: overlay's merged dir, or the layer dir itself. */
  path: string;
}

export class Mounter {
  constructor(
    private readonly driver: GraphDriver,
    private readonly layers: LayerStore,
    private readonly containers: ContainerStore,
    private readonly content: ContentStore,
  ) {}

  /** Creates container `name` on `image` and mounts it. */
  async mountImage(image: ImageRecord, req: MountRequest = {}): Promise<MountResult> {
    const name = req.name ?? ContainerStore.defaultName(image.name);
    ContainerStore.checkName(name);
    pausePoint('mount:before-unpack');
    // Layers may be missing if the image was pulled with --no-unpack or by an older tsgraph.
    await this.layers.unpack(image, this.content, { signal: req.signal });
    const parent = LayerStore.topChainId(image);
    const record: ContainerRecord = {
      name,
      id: ContainerStore.newId(),
      image: image.name,
      imageDigest: image.manifestDigest,
      parent,
      driver: this.driver.name,
      readOnly: req.readOnly ?? false,
      path: undefined,
      createdAt: new Date().toISOString(),
      state: 'creating',
    };
    // A quick answer for a taken name (a crashed creation's leftover is removed and the name reused); claim() decides races.
    const existing = this.containers.get(name);
    if (existing && !(existing.state === 'creating' && (await this.#repairOne(existing)))) throw ContainerStore.exists(name);
    pausePoint('mount:after-name-check');
    const creating = await this.#creatorLock(record.id);
    try {
      this.containers.claim(record);
      crashPoint('mount:after-claim');
      try {
        await this.driver.create(record.id, parent ? hexOf(parent) : undefined, { readWrite: true });
        crashPoint('mount:after-layer-create');
        record.path = await this.driver.get(record.id, { readOnly: record.readOnly });
        crashPoint('mount:after-mount');
        delete record.state;
        this.containers.put(record);
        return { container: record, path: record.path };
      } catch (err) {
        await this.#discard(record).catch(() => {});
        throw err;
      }
    } finally {
      this.#dropCreatorLock(creating);
    }
  }

  /** Mounts an existing container once more (one more reference). */
  async mountContainer(name: string, req: MountRequest = {}): Promise<MountResult> {
    const record = await this.#ready(name);
    const path = await this.driver.get(record.id, { readOnly: req.readOnly ?? record.readOnly });
    // Rewritten only when it changed: a blind rewrite could bring back a record a racing `rm` just deleted.
    if (record.path !== path) {
      record.path = path;
      this.containers.put(record);
    }
    return { container: record, path };
  }

  /** Drops one reference; the driver unmounts at zero. */
  async unmount(name: string): Promise<ContainerRecord> {
    const record = await this.#ready(name);
    await this.driver.put(record.id);
    return record;
  }

  /** Unmounts (every reference) and deletes container `name`. */
  async remove(name: string): Promise<ContainerRecord> {
    const record = await this.#ready(name);
    this.containers.put({ ...record, state: 'removing' });
    crashPoint('rm:after-mark');
    await this.#discard(record);
    return record;
  }

  isMounted(record: ContainerRecord): boolean {
    return record.path !== undefined && isMountPoint(record.path);
  }

  /** Removes containers whose creation a crash cut short. Returns their names. */
  async repair(): Promise<string[]> {
    const removed: string[] = [];
    for (const rec of this.containers.list()) {
      try {
        if (rec.state === 'creating' && (await this.#repairOne(rec))) removed.push(rec.name);
        if (rec.state === 'removing') {
          await this.#discard(rec);
          removed.push(rec.name);
        }
      } catch {
        // Runs at every open: a leftover that cannot go now (its mount busy) must not stop the verb; the next open tries again.
      }
    }
    return removed;
  }

  /** The record of `name`, once it is fully made (a crashed creation is cleaned up and reported as absent). */
  async #ready(name: string): Promise<ContainerRecord> {
    const record = this.containers.require(name);
    if (record.state === 'removing') {
      await this.#discard(record);
      throw new NotFoundError('TSG_NOT_FOUND', `no container named ${name} (a killed rm had left it half-removed; removed)`, { data: { name } });
    }
    if (record.state !== 'creating') return record;
    if (await this.#repairOne(record)) {
      throw new NotFoundError('TSG_NOT_FOUND', `no container named ${name} (a crashed mount had left it half-made; removed)`, { data: { name } });
    }
    throw new BusyError('TSG_IN_USE', `container ${name} is being created by another tsgraph process`, { data: { name } });
  }

  /** Deletes a `creating` record and its layer if its creator is gone; false while the creator lives. */
  async #repairOne(rec: ContainerRecord): Promise<boolean> {
    const lock = await acquireLock(this.layers.lockDir, `creating-${rec.id}`, { timeoutMs: 0 }).catch(() => undefined);
    if (!lock) return false;
    try {
      const now = this.containers.get(rec.name);
      // Finished, removed or replaced while we looked: nothing of ours to repair.
      if (!now || now.id !== rec.id || now.state !== 'creating') return false;
      await this.#discard(now);
      return true;
    } finally {
      this.#dropCreatorLock(lock);
    }
  }

  /** Unmounts and deletes the container's layer (whatever of it exists), then its record. */
  async #discard(record: ContainerRecord): Promise<void> {
    if (this.driver.exists(record.id)) {
      await this.driver.put(record.id, { all: true });
      await this.driver.remove(record.id);
      crashPoint('rm:after-layer-remove');
    }
    this.containers.remove(record.name);
  }

  /** The creator's lock: unique to one attempt, so it is never contended except by repair. */
  #creatorLock(id: string): Promise<FileLock> {
    return acquireLock(this.layers.lockDir, `creating-${id}`, { timeoutMs: 0 });
  }

  /** Only the holder deletes the file (repair never waits on it), so no lock files pile up. */
  #dropCreatorLock(lock: FileLock): void {
    fs.rmSync(lock.path, { force: true });
    lock.release();
  }
}
