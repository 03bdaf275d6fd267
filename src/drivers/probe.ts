/** Small probes drivers report in status() and `tsgraph doctor` reuses. */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Probe } from './driver.js';
import { mknod, setXattr } from '../layer/xattr.js';
import { readMountInfo, unmount } from '../mount/index.js';
import { native } from '../native.js';

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

/*
 * Probe scratch dirs are `<home>/.probe-<8 hex>`. A process killed mid-probe
 * (the first command on a new root probes overlay by mounting one) leaves its
 * dir behind, possibly with a mount on it. Every probe, every store open
 * (selectDriver) and the overlay driver's cleanup remove such leftovers. Live probes are told apart by a lock on
 * `home` itself (flock on the directory's fd, so no lock file is left): a
 * prober holds it shared for the whole probe, a cleaner needs it exclusive,
 * so a cleaner only ever sees dead probes' dirs.
 */
const PROBE_RE = /^\.probe-[0-9a-f]{8}$/;

/** How long a prober waits for a cleaner (which holds the lock for a few unmounts). */
const PROBE_LOCK_WAIT_MS = 10_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function flockNb(fd: number, kind: 'shared' | 'exclusive'): boolean {
  const n = native();
  const { LOCK_SH, LOCK_EX, LOCK_NB } = n.lockConstants;
  return n.flock(fd, (kind === 'shared' ? LOCK_SH : LOCK_EX) | LOCK_NB);
}

/** Detaches every mount at or below `dir` (deepest first), as mountinfo shows them. */
function unmountBelow(dir: string): void {
  let real: string;
  try {
    real = fs.realpathSync(dir); // mountinfo shows resolved paths (a root may be a symlink)
  } catch {
    return;
  }
  const points = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === real || p.startsWith(`${real}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) unmount(p, { detach: true });
}

function removeProbeDir(dir: string): void {
  unmountBelow(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}

function removeLeftovers(home: string): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(home)) {
    if (!PROBE_RE.test(name)) continue;
    removeProbeDir(join(home, name));
    removed.push(name);
  }
  return removed;
}

/**
 * Removes probe dirs left in `home` by killed probers (unmounting what they
 * mounted). Skipped while any probe is running there. Returns the names removed.
 */
export function cleanupProbes(home: string): string[] {
  let fd: number;
  try {
    fd = fs.openSync(home, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch {
    return []; // no home yet: nothing was ever probed there
  }
  try {
    return flockNb(fd, 'exclusive') ? removeLeftovers(home) : [];
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Runs `fn` in a scratch dir inside `home` and reports ok/fail with detail.
 * Leftovers of killed probes are removed first; this probe's own dir is
 * removed (and unmounted) afterwards, whatever `fn` did.
 */
export function probeIn(home: string, name: string, fn: (dir: string) => string): Probe {
  let fd: number | undefined;
  let dir: string | undefined;
  try {
    fs.mkdirSync(home, { recursive: true });
    fd = fs.openSync(home, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    if (flockNb(fd, 'exclusive')) {
      removeLeftovers(home);
      // Converting to shared is not atomic, but our dir does not exist yet,
      // so a cleaner slipping in between has nothing of ours to remove.
    }
    const deadline = Date.now() + PROBE_LOCK_WAIT_MS;
    while (!flockNb(fd, 'shared')) {
      if (Date.now() >= deadline) throw new Error(`${home} is locked by a probe cleanup that does not finish`);
      sleepSync(5);
    }
    dir = join(home, `.probe-${randomBytes(4).toString('hex')}`);
    fs.mkdirSync(dir);
    return { name, ok: true, detail: fn(dir) };
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message };
  } finally {
    try {
      if (dir) removeProbeDir(dir);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
}

/**
 * `n` directories laid out like real layer dirs (`<64-hex id>/<leaf>`) under
 * a probe dir: a probe whose paths are shorter than the real ones would pass
 * where the real mount fails (fsconfig once took 255 bytes per path).
 * `<home>/.probe-xxxxxxxx/` is longer than `<home>/layers/`, so these paths
 * are at least as long as the driver's own.
 */
export function layerLikeDirs(dir: string, n: number, leaf: string): string[] {
  return Array.from({ length: n }, (_, i) => {
    const d = join(dir, i.toString(16).padStart(64, '0'), leaf);
    fs.mkdirSync(d, { recursive: true });
    return d;
  });
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
  return p.ok ? p : { name: p.name, ok: false, detail: `yes: trusted.* xattrs are refused here (${p.detail}); a store made in a user namespace mounts with userxattr instead (docs/rootless.md)` };
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
