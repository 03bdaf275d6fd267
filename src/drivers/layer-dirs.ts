/**
 * Bookkeeping every driver shares: one directory per layer under
 * `<home>/layers/<id>/` holding the driver's data and `meta.json` (parent,
 * kind, mount count). New layers are staged under a temp name and renamed
 * into place, so a crash never leaves a half-made layer under its real id.
 * Changes to meta go through a driver-wide flock, held only for short steps:
 * slow work (copying a parent tree, deleting a layer) runs outside it, in a
 * dir this process flocks (cleanup skips flocked dirs: a live process owns them).
 *
 * Mount counts follow "intent first": the count is written before the mount
 * exists and after it is gone, so a crash leaves at worst a count without a
 * mount. Before every use the count is reconciled with mountinfo both ways.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BusyError, NotFoundError, TsgraphError, UsageError } from '../errors.js';
import { acquireLock, type FileLock, tryLockDir } from '../store/lock.js';
import { crashPoint, pausePoint } from '../util/crash-point.js';
import { fsyncDir, readJsonIfExists, writeJsonAtomic } from '../util/fs-atomic.js';
import { isMountPoint, readMountInfo, unmount } from '../mount/index.js';
import { removeTree } from '../util/safe-remove.js';

export interface LayerMeta {
  id: string;
  parent: string | undefined;
  readWrite: boolean;
  /** Number of layers in the chain, this one included. */
  depth: number;
  /** Live references from get(); the mount exists while > 0. */
  mounts: number;
  /** The options of the live mount (label, overlay options, idmap: GetOptions.mountKey), when it has any. */
  mountKey?: string | undefined;
  created: string;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const STAGING = '.staging-';
/** Per layer: the ids of every layer below it, topmost first, one per line (see lowerIds). */
const LOWER_FILE = 'lower';
const REMOVING = '.removing-';
/** Bound on mounts stacked on one target that reconciliation takes off. */
const MAX_STACKED = 64;

/** Takes every mount off `target` (lazily: nobody counted them, nobody should hold them). */
function detachAll(target: string): void {
  for (let i = 0; i < MAX_STACKED && isMountPoint(target); i++) unmount(target, { detach: true });
}

export class LayerDirs {
  readonly home: string;
  readonly layersDir: string;
  readonly lockDir: string;

  /** `subdir`: where per-layer dirs live (aufs keeps docker's `layers/` name for its parent lists). */
  constructor(home: string, subdir = 'layers') {
    fs.mkdirSync(join(home, subdir), { recursive: true, mode: 0o700 });
    // mountinfo lists resolved paths: a home reached through a symlink would never match, and every acquire would take a live mount for a stale count.
    this.home = fs.realpathSync(home);
    this.layersDir = join(this.home, subdir);
    this.lockDir = join(this.home, 'locks');
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

  /**
   * The ids below `id`, topmost first (its parent, …, the base layer), from
   * the layer's `lower` file: one read where walking the metas is one per
   * layer (5 ms for 500). The file is written in staging, before the layer
   * has its name, and never changes; one that does not hold exactly
   * `depth - 1` valid ids, each on its own line (a layer made before it
   * existed, a write a power cut cut short) is ignored for the walk.
   */
  lowerIds(id: string, meta: LayerMeta = this.meta(id)): string[] {
    const want = meta.depth - 1;
    if (want === 0) return [];
    let text: string | undefined;
    try {
      text = fs.readFileSync(join(this.dir(id), LOWER_FILE), 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined && text.endsWith('\n')) {
      const ids = text.slice(0, -1).split('\n');
      if (ids.length === want && ids.every((x) => ID_RE.test(x)) && ids[0] === meta.parent) return ids;
    }
    return this.chain(id).slice(1).map((m) => m.id);
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
   * Deletes staging / half-removed dirs of dead processes, first detaching any
   * mount left on their `merged/`. Runs at every store open, so it never
   * waits: while another process holds the driver lock, the next run cleans.
   */
  async cleanup(unmountMerged: (mergedDir: string) => void): Promise<void> {
    const lock = await acquireLock(this.lockDir, 'layers', { timeoutMs: 0 }).catch(() => undefined);
    if (!lock) return;
    try {
      this.cleanupLeftovers((dir) => unmountMerged(join(dir, 'merged')));
    } finally {
      lock.release();
    }
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
    // The caller holds the driver lock: the rename needs no other.
    return this.#stage(id, parent, readWrite, fill, (rename) => rename());
  }

  /**
   * Like create(), but the caller holds no lock and `fill` may be slow (vfs
   * and btrfs copy the parent's tree): it runs in a staging dir this process
   * flocks, with the parent's dir flocked shared so the parent cannot be
   * removed meanwhile; the driver lock is taken only to register the layer
   * (a rename). Readers and other creations never wait on the copy.
   */
  async build(
    id: string,
    parent: string | undefined,
    readWrite: boolean,
    fill: (staging: string, parentMeta: LayerMeta | undefined) => void | Promise<void>,
  ): Promise<LayerMeta> {
    LayerDirs.checkId(id);
    if (this.exists(id)) throw new BusyError('TSG_EXISTS', `layer ${id} already exists`, { data: { id } });
    let pin: FileLock | undefined;
    if (parent !== undefined) {
      pin = this.exists(parent) ? tryLockDir(this.dir(parent), { shared: true }) : undefined;
      if (!pin) throw new NotFoundError('TSG_NOT_FOUND', `layer ${parent} does not exist (or is being removed)`, { data: { id: parent } });
    }
    try {
      return await this.#stage(id, parent, readWrite, fill, async (rename) => {
        pausePoint('layer-create:filled');
        await this.locked(() => {
          if (this.exists(id)) throw new BusyError('TSG_EXISTS', `layer ${id} already exists`, { data: { id } });
          rename();
        });
      });
    } finally {
      pin?.release();
    }
  }

  /**
   * Fills a fresh staging dir (flocked by this process, so cleanup skips it),
   * writes its meta, and hands `register` the rename into place; on any
   * failure the staging dir goes. create() and build() differ only in how
   * they register.
   */
  async #stage(
    id: string,
    parent: string | undefined,
    readWrite: boolean,
    fill: (staging: string, parentMeta: LayerMeta | undefined) => void | Promise<void>,
    register: (rename: () => void) => void | Promise<void>,
  ): Promise<LayerMeta> {
    const parentMeta = parent === undefined ? undefined : this.meta(parent);
    if (parentMeta?.readWrite) {
      // A container layer is always a leaf (overlay would also refuse a live upper as a lower): removing one then needs no scan of every layer for children.
      throw new UsageError('TSG_USAGE', `layer ${parent} is a container layer: no layer can be made on it (commit it to an image first)`, {
        data: { id, parent },
      });
    }
    const staging = this.#newStaging(id);
    try {
      await fill(staging.dir, parentMeta);
      const meta = this.#stagedMeta(staging.dir, id, parent, readWrite, parentMeta);
      await register(() => {
        fs.renameSync(staging.dir, join(this.layersDir, id));
        fsyncDir(this.layersDir);
      });
      return meta;
    } catch (err) {
      removeTree(staging.dir);
      throw err;
    } finally {
      staging.lock.release();
    }
  }

  /** A fresh staging dir, flocked by this process so cleanup leaves it alone. */
  #newStaging(id: string): { dir: string; lock: FileLock } {
    const dir = join(this.layersDir, `${STAGING}${id}-${randomBytes(4).toString('hex')}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    const lock = tryLockDir(dir);
    if (!lock) throw new TsgraphError('TSG_INTERNAL', `cannot lock new staging dir ${dir}`);
    return { dir, lock };
  }

  #stagedMeta(staging: string, id: string, parent: string | undefined, readWrite: boolean, parentMeta: LayerMeta | undefined): LayerMeta {
    const meta: LayerMeta = {
      id,
      parent,
      readWrite,
      depth: (parentMeta?.depth ?? 0) + 1,
      mounts: 0,
      created: new Date().toISOString(),
    };
    if (parent !== undefined && parentMeta) {
      // Before meta.json (whose write fsyncs the staging dir); lowerIds checks it, so it needs no fsync of its own.
      const lowers = [parent, ...this.lowerIds(parent, parentMeta)];
      fs.writeFileSync(join(staging, LOWER_FILE), lowers.join('\n') + '\n', { encoding: 'latin1', mode: 0o600 });
    }
    writeJsonAtomic(join(staging, 'meta.json'), meta);
    return meta;
  }

  /**
   * The meta of `id` with its count reconciled with mountinfo: a count
   * without a mount (the holder crashed around a mount or unmount) is reset;
   * a mount without a count (a crash by an older tsgraph between mount and
   * count) is detached, since nobody was ever given it and mounting on top
   * would stack a second mount that one unmount leaves behind.
   */
  #liveMeta(id: string, target: string): LayerMeta {
    return this.#reconcile(this.meta(id), target);
  }

  #reconcile(meta: LayerMeta, target: string): LayerMeta {
    const mounted = isMountPoint(target);
    if (meta.mounts > 0 && !mounted) meta.mounts = 0;
    else if (meta.mounts === 0 && mounted) detachAll(target);
    return meta;
  }

  /**
   * One more reference to `id`, mounted at `target`: the first one calls
   * `mountFirst` (a failed mount takes no reference). Returns the meta.
   */
  acquire(id: string, target: string, mountFirst: (meta: LayerMeta) => void, mountKey = ''): Promise<LayerMeta> {
    return this.locked(() => {
      const meta = this.#liveMeta(id, target);
      // A mount made with other options (an idmap, a label…) is not what this caller asked for.
      if (meta.mounts > 0 && (meta.mountKey ?? '') !== mountKey) {
        throw new BusyError('TSG_IN_USE', `layer ${id} is mounted with other mount options (label, overlay options or idmap); unmount it first`, {
          data: { id, mounted: meta.mountKey ?? '', asked: mountKey },
        });
      }
      if (meta.mounts === 0) {
        if (mountKey) meta.mountKey = mountKey;
        else delete meta.mountKey;
      }
      meta.mounts++;
      // Intent first: the count is on disk before the mount exists.
      this.writeMeta(meta);
      if (meta.mounts === 1) {
        crashPoint('layer-mount:after-count');
        try {
          mountFirst(meta);
        } catch (err) {
          meta.mounts = 0;
          this.writeMeta(meta);
          throw err;
        }
        crashPoint('layer-mount:after-mount');
      }
      return meta;
    });
  }

  /** One reference less (every one with `all`); unmounts `target` at zero. */
  release(id: string, target: string, options: { all?: boolean } = {}): Promise<void> {
    return this.locked(() => {
      const meta = this.meta(id);
      const onDisk = meta.mounts;
      // After reconciling, a count above zero means the mount is there (and none is, at zero).
      const live = this.#reconcile(meta, target).mounts;
      meta.mounts = options.all ? 0 : Math.max(0, live - 1);
      if (meta.mounts === 0 && live > 0) {
        // Unmount before the count is written: a crash in between leaves a count without a mount, which #liveMeta resets.
        unmount(target);
        detachAll(target);
        crashPoint('layer-umount:after-unmount');
      }
      // Nothing to write when nothing changed (rm of a container that is not mounted).
      if (meta.mounts !== onDisk) this.writeMeta(meta);
    });
  }

  /**
   * Deletes `id`: refused while it has children, live references, or a
   * build() copying from it. Under the driver lock it is only renamed aside;
   * `beforeDelete` (detach mounts, destroy subvolumes…) and the deletion run
   * after, on the moved-aside dir, which stays flocked until it is gone.
   */
  async removeLayer(id: string, target: string, beforeDelete?: (dir: string) => void): Promise<void> {
    const doomed = await this.locked(() => {
      const meta = this.meta(id);
      const live = this.#liveMeta(id, target);
      if (live.mounts !== meta.mounts) this.writeMeta(live);
      // Refused before anything moves: a mount inside the layer other than its own target (a
      // volume bound into the container) would have its data deleted with the layer.
      const dir = fs.realpathSync(this.dir(id));
      let own = target;
      try {
        own = fs.realpathSync(target);
      } catch {
        /* no target dir: nothing of ours is mounted */
      }
      const foreign = readMountInfo(`${dir}/`).find((m) => m.mountPoint.startsWith(`${dir}/`) && m.mountPoint !== own);
      if (foreign) {
        throw new BusyError('TSG_IN_USE', `layer ${id} has ${foreign.mountPoint} mounted inside it; unmount it first`, { data: { id, mountPoint: foreign.mountPoint } });
      }
      return this.#moveAside(live);
    });
    try {
      beforeDelete?.(doomed.dir);
      removeTree(doomed.dir); // a container may still write to it through its own mount
    } finally {
      doomed.lock.release();
    }
  }

  #moveAside(meta: LayerMeta): { dir: string; lock: FileLock } {
    const id = meta.id;
    // Reads every layer's meta: a container layer skips it, since #stage never makes a layer on one.
    const kids = meta.readWrite ? [] : this.children(id);
    if (kids.length) {
      throw new BusyError('TSG_IN_USE', `layer ${id} has ${kids.length} child layer(s) (${kids.slice(0, 3).join(', ')}); remove them first`, {
        data: { id, children: kids },
      });
    }
    if (meta.mounts > 0) throw new BusyError('TSG_IN_USE', `layer ${id} is mounted (${meta.mounts} reference(s))`, { data: { id } });
    // Exclusive on the layer's own dir: refused while a build() copies from it (it holds the dir shared).
    const lock = tryLockDir(this.dir(id));
    if (!lock) throw new BusyError('TSG_IN_USE', `layer ${id} is being copied into a new layer`, { data: { id } });
    const dir = join(this.layersDir, `${REMOVING}${id}-${randomBytes(4).toString('hex')}`);
    try {
      fs.renameSync(this.dir(id), dir);
    } catch (err) {
      lock.release();
      throw err;
    }
    return { dir, lock };
  }

  /** Staging and half-removed dirs that no live process holds: crash leftovers (names only). */
  leftovers(): string[] {
    return fs.readdirSync(this.layersDir).filter((n) => {
      if (!n.startsWith(STAGING) && !n.startsWith(REMOVING)) return false;
      const lock = tryLockDir(join(this.layersDir, n));
      lock?.release();
      return lock !== undefined;
    });
  }

  /** Deletes staging and half-removed dirs left by crashes (a dir a live process flocks is in use: skipped). */
  cleanupLeftovers(beforeDelete?: (dir: string) => void): void {
    for (const n of fs.readdirSync(this.layersDir)) {
      if (n.startsWith(STAGING) || n.startsWith(REMOVING)) {
        const dir = join(this.layersDir, n);
        const lock = tryLockDir(dir);
        if (!lock) continue;
        try {
          beforeDelete?.(dir);
          removeTree(dir);
        } catch {
          // Best effort at every open (a mount left inside, a busy dir): never fails the verb; check reports it.
        } finally {
          lock.release();
        }
      }
    }
  }
}
