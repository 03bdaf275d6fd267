/** Reads /proc/self/mountinfo (octal escapes decoded). */
import * as fs from 'node:fs';
import { native } from '../native.js';

export interface MountInfo {
  id: number;
  parent: number;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** mountinfo's own escaping of a path (space, tab, newline, backslash as \ooo). */
function escape(s: string): string {
  return s.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/**
 * Every mount. With `mentioning`, [] when no line contains that path
 * (escaped as mountinfo escapes it): callers that look for mounts at or
 * below a dir skip parsing the whole table in the common case of none.
 */
export function readMountInfo(mentioning?: string): MountInfo[] {
  const out: MountInfo[] = [];
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  if (mentioning !== undefined && !text.includes(escape(mentioning))) return out;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre!.split(' ');
    const g = (post ?? '').split(' ');
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      mountPoint: unescape(f[4] ?? ''),
      options: f[5] ?? '',
      fsType: g[0] ?? '',
      source: unescape(g[1] ?? ''),
      superOptions: g[2] ?? '',
    });
  }
  return out;
}

type MountRootFn = (path: string) => boolean | null;
let mountRoot: MountRootFn | null | undefined;

/** The addon's statx check (native/mount-api.cc), or null without it (an addon built before it, or none). */
function nativeMountRoot(): MountRootFn | null {
  if (mountRoot === undefined) {
    try {
      const fn = (native() as unknown as { isMountRoot?: MountRootFn }).isMountRoot;
      mountRoot = typeof fn === 'function' ? fn : null;
    } catch {
      mountRoot = null;
    }
  }
  return mountRoot;
}

/**
 * True when something is mounted exactly at `path` (resolved: mountinfo lists
 * real paths). One statx (STATX_ATTR_MOUNT_ROOT) where the kernel reports it;
 * else a scan of mountinfo, whose cost grows with the host's mount table.
 */
export function isMountPoint(path: string): boolean {
  const check = nativeMountRoot();
  if (check) {
    try {
      const fast = check(path);
      if (typeof fast === 'boolean') return fast;
    } catch {
      /* unreadable path (EACCES, ELOOP…): mountinfo answers as before */
    }
  }
  return isListedMountPoint(path);
}

/** isMountPoint by mountinfo alone (exported for the test that compares both ways). */
export function isListedMountPoint(path: string): boolean {
  let real = path;
  try {
    real = fs.realpathSync(path);
  } catch {
    /* gone or unreadable: compare as given */
  }
  return readMountInfo().some((m) => m.mountPoint === real);
}
