/**
 * How the parent layers of an overlay layer show directory `rel` (a byte
 * string), read from their diff dirs topmost first with overlay's own rules:
 * a whiteout (char 0/0) or a non-directory hides it, an opaque directory on
 * the way hides every deeper lower. Used while applying a layer whose tar
 * omits a parent directory entry: the new upper dir then takes the lower
 * dir's owner, mode and times, as a full-tree driver (vfs, btrfs) keeps them.
 * The lowers are image layers tsgraph unpacked (never container content).
 */
import * as fs from 'node:fs';
import { fsPath } from '../../util/byte-path.js';
import { getXattr } from '../../layer/xattr.js';

export function lowerDirStats(lowers: string[], rel: string): fs.Stats | null {
  const parts = rel.split('/');
  for (const lower of lowers) {
    let prefix = '';
    let hidden = false;
    for (let i = 0; i < parts.length; i++) {
      prefix = prefix ? `${prefix}/${parts[i]}` : parts[i]!;
      const path = fsPath(lower, prefix);
      const st = fs.lstatSync(path, { throwIfNoEntry: false });
      if (!st) break; // not in this lower: a deeper one may have it, unless an opaque dir hid them
      if (st.isCharacterDevice() && st.rdev === 0) return null; // whited out
      if (!st.isDirectory()) return null; // a file or link here: the directory is new
      if (i === parts.length - 1) return st;
      if (getXattr(path, 'trusted.overlay.opaque')?.toString() === 'y') hidden = true;
    }
    if (hidden) return null;
  }
  return null;
}
