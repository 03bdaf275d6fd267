/**
 * vfs driver: every layer is a full copy of its parent with its own diff
 * applied (whiteouts as real deletions). Slow and large, but it needs no
 * kernel support beyond bind mounts, and it is the reference the other drivers
 * are compared to. Copies use reflinks where the filesystem has them.
 * Layout: `<root>/vfs/layers/<id>/{root/, merged/ (bind mount of root), meta.json}`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type ApplyResult, applyTar } from '../../layer/apply.js';
import { naiveFormat } from '../../layer/whiteout.js';
import { isMountPoint, type MountSpec, mount, unmount } from '../../mount/index.js';
import { copyTree } from '../../util/copy-tree.js';
import type { ApplyDiffOptions, CreateOptions, LayerPaths, PutOptions, DriverCapabilities, DriverStatus, GetOptions, GraphDriver } from '../driver.js';
import { LayerDirs } from '../layer-dirs.js';
import { backingFs, probeReflink } from '../probe.js';

export class VfsDriver implements GraphDriver {
  readonly name: string = 'vfs';
  readonly capabilities: DriverCapabilities = { layout: 'full' };
  readonly dirs: LayerDirs;

  constructor(readonly home: string) {
    this.dirs = new LayerDirs(home);
  }

  rootDir(id: string): string {
    return join(this.dirs.dir(id), 'root');
  }

  /**
   * Copying the parent's tree can take minutes: build() runs it without the
   * driver-wide lock (only the final rename takes it), so other verbs, even
   * read-only ones opening the store, never wait on it.
   */
  async create(id: string, parent: string | undefined, options: CreateOptions = {}): Promise<void> {
    await this.dirs.build(id, parent, options.readWrite ?? false, (staging) => {
      fs.mkdirSync(join(staging, 'merged'), { mode: 0o700 });
      this.makeRoot(staging, parent, options.readWrite ?? false);
    });
  }

  async applyDiff(id: string, _parent: string | undefined, tar: Readable, options: ApplyDiffOptions = {}): Promise<ApplyResult> {
    const result = await applyTar(this.rootDir(id), tar, { format: naiveFormat, signal: options.signal, pax: options.pax });
    this.sealLayer(id);
    return result;
  }

  /** Makes `<staging>/root`: empty for a base layer, else a copy of the parent's tree. */
  protected makeRoot(staging: string, parent: string | undefined, _readWrite: boolean): void {
    if (parent === undefined) fs.mkdirSync(join(staging, 'root'), { mode: 0o755 });
    else copyTree(this.rootDir(parent), join(staging, 'root'));
  }

  /** Called once a read-only layer is filled (btrfs makes it a read-only subvolume). */
  protected sealLayer(_id: string): void {}

  /** Called on a layer dir that is about to be deleted (btrfs deletes its subvolumes). */
  protected destroyRoot(_layerDir: string): void {}

  mountSpec(id: string): MountSpec {
    return { type: 'bind', source: this.rootDir(id) };
  }

  /**
   * The layer's root is a plain directory; like every driver, get() gives it a
   * mount of its own (a bind mount on merged/, read-only for image layers or
   * when asked), so "mounted" means the same thing whatever the driver.
   */
  async get(id: string, options: GetOptions = {}): Promise<string> {
    const target = join(this.dirs.dir(id), 'merged');
    await this.dirs.acquire(id, target, (meta) => mount(this.mountSpec(id), target, { ...options.mount, readOnly: options.readOnly || !meta.readWrite }), options.mountKey);
    return target;
  }

  async put(id: string, options: PutOptions = {}): Promise<void> {
    await this.dirs.release(id, join(this.dirs.dir(id), 'merged'), options);
  }

  exists(id: string): boolean {
    return this.dirs.exists(id);
  }

  layerPaths(id: string): LayerPaths {
    const parent = this.dirs.meta(id).parent;
    return { own: this.rootDir(id), parents: parent === undefined ? [] : [this.rootDir(parent)] };
  }

  async remove(id: string): Promise<void> {
    await this.dirs.removeLayer(id, join(this.dirs.dir(id), 'merged'), (dir) => {
      if (isMountPoint(join(dir, 'merged'))) unmount(join(dir, 'merged'), { detach: true }); // statx first: see overlay.ts
      this.destroyRoot(dir);
    });
  }

  async status(): Promise<DriverStatus> {
    return { driver: this.name, home: this.home, backingFs: backingFs(this.home), probes: [probeReflink(this.home)] };
  }

  async cleanup(): Promise<void> {
    await this.dirs.cleanup((merged) => {
      if (isMountPoint(merged)) unmount(merged, { detach: true }); // statx first: see overlay.ts cleanup
      this.destroyRoot(join(merged, '..'));
    });
  }
}
