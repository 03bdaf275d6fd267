/** Reads /proc/self/mountinfo (octal escapes decoded). */
import * as fs from 'node:fs';

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

export function readMountInfo(): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
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

/** True when something is mounted exactly at `path` (compared resolved: mountinfo lists real paths). */
export function isMountPoint(path: string): boolean {
  let real = path;
  try {
    real = fs.realpathSync(path);
  } catch {
    /* gone or unreadable: compare as given */
  }
  return readMountInfo().some((m) => m.mountPoint === real);
}
