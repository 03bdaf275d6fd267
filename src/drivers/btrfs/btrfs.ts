/**
 * btrfs driver: a layer is a subvolume; a child layer is a snapshot of its
 * parent; an image layer is made read-only (the subvolume flag) once its
 * diff is applied; a container layer is a writable snapshot. All through the
 * addon's ioctls (subvolume create, snapshot v2, flags, destroy) — never by
 * running the `btrfs` program. Diffs are the naive tree walk; applying uses
 * the shared layer code with whiteouts as deletions. Everything else (meta,
 * get/put, read-only bind mounts) is vfs's.
 * Layout: `<root>/btrfs/layers/<id>/{root (subvolume), merged/, meta.json}`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { UnsupportedError } from '../../errors.js';
import { nativeFs } from '../../native.js';
import { bytesOf } from '../../util/byte-path.js';
import { SafeNode } from '../../util/safe-dir.js';
import type { DriverStatus } from '../driver.js';
import { backingFs, kernelHas, probeIn } from '../probe.js';
import { VfsDriver } from '../vfs/vfs.js';
import { removeTree } from '../../util/safe-remove.js';

/** Inode number of every subvolume's root directory on btrfs. */
const SUBVOL_ROOT_INO = 256;

export class BtrfsDriver extends VfsDriver {
  override readonly name: string = 'btrfs';

  constructor(home: string) {
    fs.mkdirSync(home, { recursive: true, mode: 0o700 });
    const fsType = backingFs(home);
    if (fsType !== 'btrfs') {
      throw new UnsupportedError('TSG_UNSUPPORTED', `the btrfs driver needs its root on btrfs; ${home} is on ${fsType}`, { data: { home, fsType } });
    }
    super(home);
  }

  protected override makeRoot(staging: string, parent: string | undefined): void {
    const n = nativeFs();
    if (parent === undefined) n.btrfsSubvolCreate(staging, 'root');
    else n.btrfsSnapshot(this.rootDir(parent), staging, 'root', false);
  }

  protected override sealLayer(id: string): void {
    if (!this.dirs.meta(id).readWrite) nativeFs().btrfsSetReadOnly(this.rootDir(id), true);
  }

  /** Deletes the layer's subvolume and any subvolume nested inside it (deepest first). */
  protected override destroyRoot(layerDir: string): void {
    const root = join(layerDir, 'root');
    if (!fs.existsSync(root)) return;
    deleteSubvolumes(root);
  }

  override async status(): Promise<DriverStatus> {
    const n = nativeFs();
    return {
      driver: this.name,
      home: this.home,
      backingFs: backingFs(this.home),
      probes: [
        { name: 'btrfs in kernel', ok: kernelHas('btrfs'), detail: kernelHas('btrfs') ? 'listed in /proc/filesystems' : 'modprobe btrfs' },
        probeIn(this.home, 'subvolume snapshot', (dir) => {
          n.btrfsSubvolCreate(dir, 'a');
          n.btrfsSnapshot(join(dir, 'a'), dir, 'b', true);
          const ro = n.btrfsIsReadOnly(join(dir, 'b'));
          n.btrfsSubvolDestroy(dir, 'b');
          n.btrfsSubvolDestroy(dir, 'a');
          if (!ro) throw new Error('read-only snapshot came out writable');
          return 'create, read-only snapshot, destroy work';
        }),
      ],
    };
  }
}

function isSubvolumeRoot(path: string): boolean {
  const st = fs.lstatSync(path);
  return st.isDirectory() && st.ino === SUBVOL_ROOT_INO;
}

/**
 * Deletes subvolume `path`: nested subvolumes first (a subvolume cannot be
 * destroyed while another sits inside it), clearing read-only flags on the
 * way so their parents can be modified. The tree is a container's: it is
 * walked by dir fds without following (util/safe-dir.ts), names are bytes,
 * and nested subvolumes are reached through their parent's fd
 * (`/proc/self/fd/N/.`), so a symlink swapped in cannot lead the walk, or a
 * destroy, onto the host.
 */
export function deleteSubvolumes(path: string): void {
  const n = nativeFs();
  if (!isSubvolumeRoot(path)) {
    removeTree(path);
    return;
  }
  if (n.btrfsIsReadOnly(path)) n.btrfsSetReadOnly(path, false);
  const viaFd = (node: SafeNode) => `/proc/self/fd/${node.fd}/.`;
  const walk = (dir: SafeNode) => {
    for (const name of dir.names()) {
      const child = dir.open(name);
      if (!child) continue;
      let nested = false;
      try {
        if (!child.stats.isDirectory()) continue;
        nested = child.stats.ino === SUBVOL_ROOT_INO;
        if (nested && n.btrfsIsReadOnly(viaFd(child))) n.btrfsSetReadOnly(viaFd(child), false);
        walk(child);
      } finally {
        child.close();
      }
      if (nested) n.btrfsSubvolDestroy(viaFd(dir), bytesOf(name));
    }
  };
  const root = SafeNode.openRoot(path);
  try {
    walk(root);
  } finally {
    root.close();
  }
  const i = path.lastIndexOf('/');
  n.btrfsSubvolDestroy(path.slice(0, i), path.slice(i + 1));
}
