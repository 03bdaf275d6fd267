/**
 * Bookkeeping every driver shares: one directory per layer under
 * `<home>/layers/<id>/` holding the driver's data and `meta.json` (parent,
 * kind, mount count). New layers are staged under a temp name and renamed
 * into place, so a crash never leaves a half-made layer under its real id.
 * Changes to meta go through a driver-wide flock.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BusyError, NotFoundError, TsgraphError, UsageError } from '../errors.js';
import { acquireLock, type FileLock } from '../store/lock.js';
import { fsyncDir, readJsonIfExists, writeJsonAtomic } from '../util/fs-atomic.js';
import { isMountPoint, unmount } from '../mount/index.js';

export interface LayerMeta {
  id: string;
  parent: string | undefined;
  readWrite: boolean;
  /** Number of layers in the chain, this one included. */
  depth: number;
  /** Live references from get(); the mount exists while > 0. */
  mounts: number;
  created: string;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const STAGING = '.staging-';
const REMOVING = '.removing-';

export class LayerDirs {
  readonly layersDir: string;
  readonly lockDir: string;

  /** `subdir`: where per-layer dirs live (aufs keeps docker's `layers/` name for its parent lists). */
  constructor(
    readonly home: string,
    subdir = 'layers',
  ) {
    this.layersDir = join(home, subdir);
    this.lockDir = join(home, 'locks');
    fs.mkdirSync(this.layersDir, { recursive: true, mode: 0o700 });
  }

  static checkId(id: string): void {
    if (!ID_RE.test(id)) throw new UsageError('TSG_USAGE', `invalid layer id ${JSON.stringify(id)}`);
  }

  dir(id: string): string {
    LayerDirs.checkId(id);
    return join(this.layersDir, id);
  }

  exists(id: string): boolean {
    return ID_RE.test(id) && fs.existsSync(join(this.layersDir, id, 'meta.json'));
  }

  meta(id: string): LayerMeta {
    const m = readJsonIfExists<LayerMeta>(join(this.dir(id), 'meta.json'));
    if (!m) throw new NotFoundError('TSG_NOT_FOUND', `layer ${id} does not exist`, { data: { id } });
    return m;
  }

  writeMeta(meta: LayerMeta): void {
    writeJsonAtomic(join(this.dir(meta.id), 'meta.json'), meta);
  }

  /** `id` first, then its parent, … down to the base layer. */
  chain(id: string): LayerMeta[] {
    const out: LayerMeta[] = [];
    let cur: string | undefined = id;
    // Bounded: a chain longer than this is corrupt metadata, not an image.
    for (let i = 0; cur !== undefined && i < 4096; i++) {
      const m = this.meta(cur);
      out.push(m);
      cur = m.parent;
    }
    if (cur !== undefined) throw new TsgraphError('TSG_INTERNAL', `layer chain of ${id} does not end (corrupt metadata)`);
    return out;
  }

  ids(): string[] {
    return fs.readdirSync(this.layersDir).filter((n) => !n.startsWith('.') && ID_RE.test(n));
  }

  children(id: string): string[] {
    return this.ids().filter((c) => readJsonIfExists<LayerMeta>(join(this.layersDir, c, 'meta.json'))?.parent === id);
  }

  lock(): Promise<FileLock> {
    return acquireLock(this.lockDir, 'layers');
  }

  /** Runs `fn` holding the driver-wide lock. */
  async locked<T>(fn: () => T | Promise<T>): Promise<T> {
    const lock = await this.lock();
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }

  /**
   * Deletes staging / half-removed dirs, first detaching any mount left on
   * their `merged/` (a crash between mount and record).
   */
  async cleanup(unmountMerged: (mergedDir: string) => void): Promise<void> {
    await this.locked(() => this.cleanupLeftovers((dir) => unmountMerged(join(dir, 'merged'))));
  }

  /**
   * Makes layer `id`: `fill(stagingDir)` populates a temp dir, which is then
   * renamed into place with its meta. Throws TSG_EXISTS when `id` exists.
   */
  async create(
    id: string,
    parent: string | undefined,
    readWrite: boolean,
    fill: (staging: string, parentMeta: LayerMeta | undefined) => void | Promise<void>,
  ): Promise<LayerMeta> {
    LayerDirs.checkId(id);
    if (this.exists(id)) throw new BusyError('TSG_EXISTS', `layer ${id} already exists`, { data: { id } });
    const parentMeta = parent === undefined ? undefined : this.meta(parent);
    const staging = join(this.layersDir, `${STAGING}${id}-${randomBytes(4).toString('hex')}`);
    fs.mkdirSync(staging, { mode: 0o700 });
    try {
      await fill(staging, parentMeta);
      const meta: LayerMeta = {
        id,
        parent,
        readWrite,
        depth: (parentMeta?.depth ?? 0) + 1,
        mounts: 0,
        created: new Date().toISOString(),
      };
      writeJsonAtomic(join(staging, 'meta.json'), meta);
      fs.renameSync(staging, join(this.layersDir, id));
      fsyncDir(this.layersDir);
      return meta;
    } catch (err) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw err;
    }
  }

  /** The meta of `id`, with a reference count reset when its mount is gone (the holder crashed). */
  #liveMeta(id: string, target: string): LayerMeta {
    const meta = this.meta(id);
    if (meta.mounts > 0 && !isMountPoint(target)) meta.mounts = 0;
    return meta;
  }

  /**
   * One more reference to `id`, mounted at `target`: the first one calls
   * `mountFirst` (a failed mount takes no reference). Returns the meta.
   */
  acquire(id: string, target: string, mountFirst: (meta: LayerMeta) => void): Promise<LayerMeta> {
    return this.locked(() => {
      const meta = this.#liveMeta(id, target);
      if (meta.mounts === 0) mountFirst(meta);
      meta.mounts++;
      this.writeMeta(meta);
      return meta;
    });
  }

  /** One reference less (every one with `all`); unmounts `target` at zero. */
  release(id: string, target: string, options: { all?: boolean } = {}): Promise<void> {
    return this.locked(() => {
      const meta = this.#liveMeta(id, target);
      meta.mounts = options.all ? 0 : Math.max(0, meta.mounts - 1);
      if (meta.mounts === 0) unmount(target);
      this.writeMeta(meta);
    });
  }

  /**
   * Deletes `id` (under the lock): refused while it has children or live
   * references; `beforeDelete` runs on the moved-aside dir (detach mounts,
   * destroy subvolumes…).
   */
  removeLayer(id: string, target: string, beforeDelete?: (dir: string) => void): Promise<void> {
    return this.locked(() => {
      const meta = this.meta(id);
      const live = this.#liveMeta(id, target);
      if (live.mounts !== meta.mounts) this.writeMeta(live);
      this.remove(id, beforeDelete);
    });
  }

  /** Refuses while children exist or while mounted; then moves aside and deletes. */
  remove(id: string, beforeDelete?: (dir: string) => void): void {
    const meta = this.meta(id);
    const kids = this.children(id);
    if (kids.length) {
      throw new BusyError('TSG_IN_USE', `layer ${id} has ${kids.length} child layer(s) (${kids.slice(0, 3).join(', ')}); remove them first`, {
        data: { id, children: kids },
      });
    }
    if (meta.mounts > 0) throw new BusyError('TSG_IN_USE', `layer ${id} is mounted (${meta.mounts} reference(s))`, { data: { id } });
    const doomed = join(this.layersDir, `${REMOVING}${id}-${randomBytes(4).toString('hex')}`);
    fs.renameSync(this.dir(id), doomed);
    beforeDelete?.(doomed);
    fs.rmSync(doomed, { recursive: true, force: true });
  }

  /** Deletes staging and half-removed dirs left by crashes. */
  cleanupLeftovers(beforeDelete?: (dir: string) => void): void {
    for (const n of fs.readdirSync(this.layersDir)) {
      if (n.startsWith(STAGING) || n.startsWith(REMOVING)) {
        const dir = join(this.layersDir, n);
        beforeDelete?.(dir);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }
}
