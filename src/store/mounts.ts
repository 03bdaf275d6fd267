/**
 * Mounting images as containers: a writable layer on the image's top layer,
 * mounted through the driver, recorded by name.
 *
 * Crash safety (a `kill -9` may land between any two steps): the name is
 * claimed first, atomically, with a record in state `creating` that already
 * names the layer id; the layer is then made and mounted (the driver counts
 * a mount before it exists), and the record loses its state last. `rm` marks
 * the record `removing` before it touches the layer. So a kill leaves either
 * a ready container or a record with a state, never a live-looking record
 * whose layer is gone.
 *
 * Each container has an owner lock, `locks/container-<id>.lock` (the id is
 * unique to one creation): held by its creator until the record is ready, and
 * by every mount NAME / umount / rm while it works. A record with a state
 * whose lock is free is a crash leftover: repair() (at every store open)
 * removes it with whatever of its layer exists, unmounted first. The lock
 * file lives as long as the container: whoever holds it when the record is
 * gone deletes it (a late waiter on the old file then finds no record).
 */
import * as fs from 'node:fs';
import type { ContentStore } from '../content/store.js';
import { type Digest, hexOf } from '../digest.js';
import type { GraphDriver } from '../drivers/driver.js';
import { BusyError, NotFoundError } from '../errors.js';
import { type ContainerMountSpec, isMountPoint, type MountOptions } from '../mount/index.js';
import { crashPoint, pausePoint } from '../util/crash-point.js';
import { ContainerStore, type ContainerRecord } from './containers.js';
import type { ImageRecord } from './image-store.js';
import { LayerStore, type UnpackEvent } from './layer-store.js';
import { acquireLock, type FileLock } from './lock.js';
import { driverGetOptions, specOfContainer } from './mount-options.js';

/** How long mount NAME / umount / rm / commit wait for each other on one container. */
const OWNER_WAIT_MS = 10 * 60_000;

/** Options of `Store.mount`: the container's name, how to mount it (MountOptions), and the unpack's signal and progress. */
export interface MountRequest extends MountOptions {
  /** Container name (default: `<image>-<6 hex>`). */
  name?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Progress of unpacking the image's layers when they are not unpacked yet. */
  onProgress?: ((event: UnpackEvent) => void) | undefined;
}

/** Options of `Store.createContainer`. */
export interface CreateContainerRequest {
  /** Container name (default: `<image>-<6 hex>`). */
  name?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Progress of unpacking the image's layers when they are not unpacked yet. */
  onProgress?: ((event: UnpackEvent) => void) | undefined;
}

/** What Store.mount made or mounted: the container and its root path. */
export interface MountResult {
  container: ContainerRecord;
  /** The root filesystem: overlay's merged dir, or the layer dir itself. */
  path: string;
}

/** Bound on the per-process memos below (images a runtime mounts from; more only costs a re-check). */
const MEMO_MAX = 64;

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  if (map.size >= MEMO_MAX && !map.has(key)) map.delete(map.keys().next().value as K);
  map.set(key, value);
}

export class Mounter {
  /** Image diffIds (joined) → chainId of the top layer: 500 sha256 per mount otherwise. */
  readonly #tops = new Map<string, Digest | undefined>();
  /** Top chainId → `createdAt` of its layer record when this process saw the whole chain complete. */
  readonly #complete = new Map<Digest, string>();

  constructor(
    private readonly driver: GraphDriver,
    private readonly layers: LayerStore,
    private readonly containers: ContainerStore,
    private readonly content: ContentStore,
  ) {}

  /** Creates container `name` on `image` and mounts it. */
  async mountImage(image: ImageRecord, req: MountRequest = {}): Promise<MountResult> {
    // Checked before anything is unpacked or claimed.
    const get = { readOnly: req.readOnly ?? false, ...driverGetOptions(this.driver, req) };
    const { container, path } = await this.#create(image, req, get.readOnly, async (record) => this.driver.get(record.id, get));
    return { container, path: path! };
  }

  /** Creates container `name` on `image` without mounting it (Store.createContainer). */
  async createContainer(image: ImageRecord, req: CreateContainerRequest = {}): Promise<ContainerRecord> {
    return (await this.#create(image, req, false, undefined)).container;
  }

  /**
   * The container's mount as data (Store.mountSpec): nothing is mounted.
   * Under the owner lock, shared: an `rm` does not delete the layer while
   * the spec is being read.
   */
  async spec(name: string, options: MountOptions = {}): Promise<ContainerMountSpec> {
    return this.#owned(name, true, async (record) => specOfContainer(this.driver, record, options));
  }

  /**
   * Claims `name`, unpacks the image if needed, makes the container layer
   * and, with `mountIt`, mounts it; the record is ready last (see the file
   * comment for the crash safety).
   */
  async #create(
    image: ImageRecord,
    req: CreateContainerRequest,
    readOnly: boolean,
    mountIt: ((record: ContainerRecord) => Promise<string>) | undefined,
  ): Promise<{ container: ContainerRecord; path: string | undefined }> {
    const name = req.name ?? ContainerStore.defaultName(image.name);
    ContainerStore.checkName(name);
    // A quick answer for a taken name, before any unpacking (a crash leftover is removed and the name reused); claim() decides races.
    const existing = this.containers.get(name);
    if (existing && !(existing.state && (await this.#repairOne(existing)))) throw ContainerStore.exists(name);
    pausePoint('mount:after-name-check');
    pausePoint('mount:before-unpack');
    const parent = this.#topChainId(image);
    // Layers may be missing if the image was pulled with --no-unpack or by an older tsgraph.
    if (!this.#chainStillComplete(parent)) {
      await this.layers.unpack(image, this.content, { signal: req.signal, onEvent: req.onProgress });
      this.#rememberChain(parent);
    }
    const record: ContainerRecord = {
      name,
      id: ContainerStore.newId(),
      image: image.name,
      imageDigest: image.manifestDigest,
      parent,
      driver: this.driver.name,
      readOnly,
      path: undefined,
      createdAt: new Date().toISOString(),
      state: 'creating',
    };
    // Uncontended (a fresh id): held until the record is ready, so repair can tell this creation from a crashed one.
    const owner = await this.#ownerLock(record.id, 0);
    try {
      this.containers.claim(record);
      crashPoint('mount:after-claim');
      try {
        await this.driver.create(record.id, parent ? hexOf(parent) : undefined, { readWrite: true });
        crashPoint('mount:after-layer-create');
        if (mountIt) {
          record.path = await mountIt(record);
          crashPoint('mount:after-mount');
        }
        delete record.state;
        this.containers.put(record);
        return { container: record, path: record.path };
      } catch (err) {
        await this.#discard(record).catch(() => {});
        throw err;
      }
    } finally {
      // The file stays with a live container (later owners wait on it); it goes when the claim failed or was undone.
      this.#dropOwnerLock(owner, this.containers.get(name)?.id !== record.id);
    }
  }

  /**
   * Runs `fn` on ready container `name` holding its owner lock shared (as
   * mount NAME and umount do): an `rm` waits until `fn` is done, so `commit`
   * never reads a layer that is being deleted.
   */
  async using<T>(name: string, fn: (record: ContainerRecord) => Promise<T>): Promise<T> {
    return this.#owned(name, true, fn);
  }

  /** Mounts an existing container once more (one more reference). */
  async mountContainer(name: string, req: MountRequest = {}): Promise<MountResult> {
    // Shared: the count itself is kept under the driver lock.
    return this.#owned(name, true, async (record) => {
      // A mount is shared by every reference: asking for read-only while it is mounted
      // read-write would hand back a writable tree. Said, not silently ignored.
      if (req.readOnly && !record.readOnly && record.path && isMountPoint(record.path)) {
        throw new BusyError('TSG_IN_USE', `container ${name} is mounted read-write; unmount it (tsgraph umount ${name}) to mount it read-only`, {
          data: { name, path: record.path },
        });
      }
      const path = await this.driver.get(record.id, { readOnly: req.readOnly ?? record.readOnly, ...driverGetOptions(this.driver, req) });
      if (record.path !== path) {
        record.path = path;
        this.containers.put(record);
      }
      return { container: record, path };
    });
  }

  /** Drops one reference; the driver unmounts at zero. */
  async unmount(name: string): Promise<ContainerRecord> {
    return this.#owned(name, true, async (record) => {
      await this.driver.put(record.id);
      return record;
    });
  }

  /** Unmounts (every reference) and deletes container `name`. */
  async remove(name: string): Promise<ContainerRecord> {
    return this.#owned(name, false, async (record) => {
      this.containers.put({ ...record, state: 'removing' });
      crashPoint('rm:after-mark');
      pausePoint('rm:after-mark');
      try {
        await this.#discard(record);
      } catch (err) {
        // Refused (a busy mount): the layer is untouched (removal renames it aside in one step), so the container is ready again.
        if (this.driver.exists(record.id)) this.containers.put(record);
        throw err;
      }
      return record;
    });
  }

  #topChainId(image: ImageRecord): Digest | undefined {
    const key = image.layers.map((l) => l.diffId).join(',');
    if (this.#tops.has(key)) return this.#tops.get(key);
    const top = LayerStore.topChainId(image);
    remember(this.#tops, key, top);
    return top;
  }

  /**
   * True when this process saw every layer of the chain under `top` complete
   * (LayerStore.unpack checked each) and `top` is still that same complete
   * layer: then the layers below it are still complete, and one record read
   * replaces one per layer (500 reads and stats for a 500-layer image). A
   * layer with children is never removed (LayerDirs refuses), and a layer
   * record is rewritten incomplete only after its layer was removed, so the
   * chain below a layer that stayed can neither vanish nor be half-made; a
   * top layer made anew has a new `createdAt` and is checked in full again.
   */
  #chainStillComplete(top: Digest | undefined): boolean {
    if (top === undefined) return true; // no layers: nothing to unpack
    const seen = this.#complete.get(top);
    if (seen === undefined) return false;
    let rec;
    try {
      rec = this.layers.get(top);
    } catch {
      return false; // unparsable: the full check decides
    }
    return !!rec && !rec.incomplete && rec.createdAt === seen && this.driver.exists(LayerStore.driverId(top));
  }

  #rememberChain(top: Digest | undefined): void {
    if (top === undefined) return;
    const rec = this.layers.get(top);
    if (rec && !rec.incomplete && typeof rec.createdAt === 'string') remember(this.#complete, top, rec.createdAt);
  }

  isMounted(record: ContainerRecord): boolean {
    return record.path !== undefined && isMountPoint(record.path);
  }

  /** Removes containers a crash left half-made or half-removed. Returns their names. */
  async repair(): Promise<string[]> {
    const removed: string[] = [];
    for (const rec of this.containers.list()) {
      if (!rec.state) continue;
      try {
        if (await this.#repairOne(rec)) removed.push(rec.name);
      } catch {
        // Runs at every open: a leftover that cannot go now (its mount busy) must not stop the verb; the next open tries again.
      }
    }
    return removed;
  }

  /**
   * Runs `fn` on the ready record of `name` holding its owner lock, shared
   * (mount, umount, commit) or exclusive (rm), waiting a bounded time for
   * the others. A leftover of a crash is cleaned up and reported as absent; a
   * creation or removal in progress is TSG_IN_USE.
   */
  async #owned<T>(name: string, shared: boolean, fn: (record: ContainerRecord) => Promise<T>): Promise<T> {
    const seen = this.containers.require(name);
    if (seen.state) {
      if (await this.#repairOne(seen)) {
        throw new NotFoundError('TSG_NOT_FOUND', `no container named ${name} (a killed ${seen.state === 'creating' ? 'mount' : 'rm'} had left it; cleaned up)`, {
          data: { name },
        });
      }
      throw new BusyError('TSG_IN_USE', `container ${name} is being ${seen.state === 'creating' ? 'created' : 'removed'} by another tsgraph process`, { data: { name } });
    }
    const owner = await this.#ownerLock(seen.id, OWNER_WAIT_MS, shared);
    let gone = false;
    try {
      const record = this.containers.get(name);
      // Removed (or removed and made anew) while we waited.
      if (!record || record.id !== seen.id || record.state) {
        gone = true;
        throw new NotFoundError('TSG_NOT_FOUND', `no container named ${name} (removed meanwhile)`, { data: { name } });
      }
      const out = await fn(record);
      gone = !this.containers.get(name);
      return out;
    } finally {
      this.#dropOwnerLock(owner, gone);
    }
  }

  /** Deletes a record that has a state, and its layer, if no live process owns it; false while one does. */
  async #repairOne(rec: ContainerRecord): Promise<boolean> {
    const lock = await this.#ownerLock(rec.id, 0).catch(() => undefined);
    if (!lock) return false;
    let done = false;
    try {
      const now = this.containers.get(rec.name);
      // Finished, removed or replaced while we looked: nothing of ours to repair.
      if (!now || now.id !== rec.id || !now.state) return false;
      await this.#discard(now);
      done = true;
      return true;
    } finally {
      this.#dropOwnerLock(lock, done || !this.containers.get(rec.name));
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

  #ownerLock(id: string, timeoutMs: number, shared = false): Promise<FileLock> {
    return acquireLock(this.layers.lockDir, `container-${id}`, {
      shared,
      timeoutMs,
      what: `container layer ${id} (in use by another tsgraph process: a commit, mount, umount or rm)`,
    });
  }

  /** Releases the owner lock, deleting its file once the record is gone (a waiter that still gets the old file finds no record and stops). */
  #dropOwnerLock(lock: FileLock, deleteFile: boolean): void {
    if (deleteFile) fs.rmSync(lock.path, { force: true });
    lock.release();
  }
}
