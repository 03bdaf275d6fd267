/**
 * A tree listing for comparisons: one line per entry with path, type, mode,
 * uid:gid, size + sha256 (files), link target (symlinks), major,minor
 * (devices), xattrs and hardlink group. Overlay's own xattrs are left out.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { readXattrs } from '../../src/layer/xattr.js';
import { splitDev } from '../../src/util/fs-helpers.js';


function typeOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'other';
}

export function listTree(root: string, options: { keepOverlayXattrs?: boolean } = {}): string[] {
  const rows: Array<{ path: string; st: fs.Stats; line: string }> = [];
  const walk = (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    const st = fs.lstatSync(abs);
    const parts = [rel || '.', typeOf(st), (st.mode & 0o7777).toString(8).padStart(4, '0'), `${st.uid}:${st.gid}`];
    if (st.isFile()) parts.push(`${st.size}`, createHash('sha256').update(fs.readFileSync(abs)).digest('hex').slice(0, 16));
    if (st.isSymbolicLink()) parts.push(`-> ${fs.readlinkSync(abs)}`);
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      const { major, minor } = splitDev(st.rdev);
      parts.push(`${major},${minor}`);
    }
    const xattrs = [...readXattrs(abs)]
      .filter(([k]) => options.keepOverlayXattrs || !k.startsWith('trusted.overlay.'))
      .map(([k, v]) => `${k}=${v.toString('utf8')}`)
      .sort();
    if (xattrs.length) parts.push(`xattrs{${xattrs.join(';')}}`);
    rows.push({ path: rel, st, line: parts.join(' ') });
    if (st.isDirectory()) for (const name of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${name}` : name);
  };
  walk('');
  // Hardlink groups: every member names the first path of its group.
  const groups = new Map<string, string>();
  return rows.map((r) => {
    if (!r.st.isDirectory() && r.st.nlink > 1) {
      const key = `${r.st.dev}:${r.st.ino}`;
      if (!groups.has(key)) groups.set(key, r.path);
      return `${r.line} hardlink=${groups.get(key)}`;
    }
    return r.line;
  });
}
