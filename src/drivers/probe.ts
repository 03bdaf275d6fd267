/** Small probes drivers report in status() and `tsgraph doctor` reuses. */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Probe } from './driver.js';
import { mknod, setXattr } from '../layer/xattr.js';

const FS_MAGIC: Record<number, string> = {
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x9123683e: 'btrfs',
  0x58465342: 'xfs',
  0x794c7630: 'overlay',
  0x6969: 'nfs',
  0x65735546: 'fuse',
  0x2fc12fc1: 'zfs',
  0x858458f6: 'ramfs',
  0x61756673: 'aufs',
};

/** Filesystem type of the fs holding `path` (by statfs magic). */
export function backingFs(path: string): string {
  try {
    const t = fs.statfsSync(path).type;
    return FS_MAGIC[t] ?? `0x${t.toString(16)}`;
  } catch {
    return 'unknown';
  }
}

/** Runs `fn` in a scratch dir inside `home` and reports ok/fail with detail. */
export function probeIn(home: string, name: string, fn: (dir: string) => string): Probe {
  const dir = join(home, `.probe-${randomBytes(4).toString('hex')}`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    return { name, ok: true, detail: fn(dir) };
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function probeDType(home: string): Probe {
  return probeIn(home, 'd_type', (dir) => {
    fs.writeFileSync(join(dir, 'f'), '');
    const [entry] = fs.readdirSync(dir, { withFileTypes: true });
    // Node reports "unknown" entries by lstat-ing; a working d_type gives isFile() directly.
    if (!entry?.isFile()) throw new Error('readdir does not report file types (d_type); overlay needs it');
    return 'supported';
  });
}

export function probeWhiteoutMknod(home: string): Probe {
  return probeIn(home, 'whiteout mknod', (dir) => {
    mknod(join(dir, 'wh'), 'char', 0, 0, 0);
    return 'char 0/0 can be created';
  });
}

/**
 * overlay records whiteouts/opaque dirs in trusted.* xattrs, which need
 * CAP_SYS_ADMIN; without it (rootless) the mount needs `userxattr` and
 * user.overlay.* instead. Reports whether trusted.* works here.
 */
export function probeUserxattrNeeded(home: string): Probe {
  const p = probeIn(home, 'userxattr needed', (dir) => {
    setXattr(dir, 'trusted.tsgraph-probe', 'y');
    return 'no: trusted.overlay.* xattrs can be written';
  });
  return p.ok ? p : { name: p.name, ok: false, detail: `yes: trusted.* xattrs are refused here (${p.detail}); rootless overlay is not supported yet` };
}

export function probeReflink(home: string): Probe {
  return probeIn(home, 'reflink', (dir) => {
    fs.writeFileSync(join(dir, 'a'), 'x');
    fs.copyFileSync(join(dir, 'a'), join(dir, 'b'), fs.constants.COPYFILE_FICLONE_FORCE);
    return 'copy-on-write clones work here';
  });
}

export function kernelHas(fsName: string): boolean {
  try {
    return new RegExp(`\\b${fsName}\\b`).test(fs.readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}
