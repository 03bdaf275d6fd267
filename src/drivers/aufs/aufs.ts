/**
 * aufs driver, laid out like docker's old one:
 *   diff/<id>     the layer, whiteouts kept as `.wh.` files (OCI's format is aufs's own)
 *   layers/<id>   parent ids, one per line, topmost first (docker's format)
 *   mnt/<id>      mount point
 *   meta/<id>/    tsgraph's shared bookkeeping (meta.json)
 * Mount: `aufs` with `br:` branches (rw top, ro+wh below) and `append:`
 * remounts for long lists (src/mount). This kernel has no aufs: mounting
 * fails with TSG_UNSUPPORTED naming the module; everything else works.
 * Native diff: the diff dir itself, minus aufs's `.wh..wh.*` internals.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type ApplyResult, applyTar } from '../../layer/apply.js';
import { aufsFormat } from '../../layer/whiteout.js';
import { type MountSpec, mount, unmount } from '../../mount/index.js';
import type { ApplyDiffOptions, CreateOptions, DriverCapabilities, DriverStatus, GetOptions, GraphDriver, LayerPaths, PutOptions } from '../driver.js';
import { LayerDirs } from '../layer-dirs.js';
import { backingFs, kernelHas } from '../probe.js';
import { removeTree } from '../../util/safe-remove.js';

export const AUFS_REMEDY = 'aufs is not in this kernel (mainline never merged it): load the `aufs` module from an aufs-patched kernel, or use --driver overlay';

export class AufsDriver implements GraphDriver {
  readonly name = 'aufs';
  readonly capabilities: DriverCapabilities = { layout: 'diff', whiteouts: 'aufs' };
  readonly dirs: LayerDirs;

  constructor(readonly home: string) {
    this.dirs = new LayerDirs(home, 'meta');
    for (const d of ['diff', 'layers', 'mnt']) fs.mkdirSync(join(home, d), { recursive: true, mode: 0o700 });
  }

  diffDir(id: string): string {
    LayerDirs.checkId(id);
    return join(this.home, 'diff', id);
  }

  mntDir(id: string): string {
    LayerDirs.checkId(id);
    return join(this.home, 'mnt', id);
  }

  async create(id: string, parent: string | undefined, options: CreateOptions = {}): Promise<void> {
    await this.dirs.locked(() =>
      this.dirs.create(id, parent, options.readWrite ?? false, () => {
        const parents = parent === undefined ? [] : [parent, ...this.dirs.chain(parent).slice(1).map((m) => m.id)];
        fs.mkdirSync(this.diffDir(id), { mode: 0o755 });
        fs.mkdirSync(this.mntDir(id), { mode: 0o700 });
        fs.writeFileSync(join(this.home, 'layers', id), parents.map((p) => `${p}\n`).join(''));
      }),
    );
  }

  async applyDiff(id: string, _parent: string | undefined, tar: Readable, options: ApplyDiffOptions = {}): Promise<ApplyResult> {
    return applyTar(this.diffDir(id), tar, { format: aufsFormat, signal: options.signal, pax: options.pax });
  }

  /** Parent ids from docker's `layers/<id>` file, topmost first. */
  parents(id: string): string[] {
    return fs.readFileSync(join(this.home, 'layers', id), 'utf8').split('\n').filter(Boolean);
  }

  mountSpec(id: string): MountSpec {
    const meta = this.dirs.meta(id);
    const top = { path: this.diffDir(id), mode: meta.readWrite ? ('rw' as const) : ('ro+wh' as const) };
    return { type: 'aufs', branches: [top, ...this.parents(id).map((p) => ({ path: this.diffDir(p), mode: 'ro+wh' as const }))], options: [] };
  }

  async get(id: string, options: GetOptions = {}): Promise<string> {
    const target = this.mntDir(id);
    await this.dirs.acquire(id, target, (meta) => mount(this.mountSpec(id), target, { ...options.mount, readOnly: options.readOnly || !meta.readWrite }), options.mountKey);
    return target;
  }

  async put(id: string, options: PutOptions = {}): Promise<void> {
    await this.dirs.release(id, this.mntDir(id), options);
  }

  exists(id: string): boolean {
    return this.dirs.exists(id);
  }

  layerPaths(id: string): LayerPaths {
    return { own: this.diffDir(id), parents: this.parents(id).map((p) => this.diffDir(p)) };
  }

  async remove(id: string): Promise<void> {
    await this.dirs.removeLayer(id, this.mntDir(id), () => {
      unmount(this.mntDir(id), { detach: true });
      for (const d of [this.diffDir(id), this.mntDir(id), join(this.home, 'layers', id)]) removeTree(d);
    });
  }

  async status(): Promise<DriverStatus> {
    const present = kernelHas('aufs');
    return {
      driver: this.name,
      home: this.home,
      backingFs: backingFs(this.home),
      probes: [{ name: 'aufs in kernel', ok: present, detail: present ? 'listed in /proc/filesystems' : AUFS_REMEDY }],
    };
  }

  async cleanup(): Promise<void> {
    await this.dirs.cleanup(() => {});
    // diff/mnt/layers entries whose layer never got its meta (a crash mid-create).
    await this.dirs.locked(() => {
      for (const d of ['diff', 'mnt', 'layers']) {
        for (const id of fs.readdirSync(join(this.home, d))) {
          if (!this.dirs.exists(id)) removeTree(join(this.home, d, id));
        }
      }
    });
  }
}
