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

/**
 * Implicit parent dirs of a layer applied while its parent layers are still
 * being applied (a parallel pull): their lowers are not final yet, so the
 * applier gets a marker instead (an owner that changes nothing, a mode and a
 * time no tar gives a directory: set-uid 04017, 1 ms after the epoch), and
 * settle(), called once every parent is complete, gives each directory still
 * carrying the marker what a sequential apply would have given it: the lower
 * dir's owner, mode and time, or, when no lower shows it, the mode mkdir gave
 * it. An explicit entry for the directory later in the tar overrides the
 * marker, exactly as it overrides inherited attributes.
 */
export const MARK_MODE = 0o4017;
const MARK_MTIME_MS = 1;

export class DeferredLowerDirs {
  /** Implicit dirs seen, with the mode they had when made. */
  readonly #made = new Map<string, number | undefined>();

  constructor(readonly own: string) {}

  /** The applier's `lowerDir` callback. */
  readonly lowerDir = (rel: string): fs.Stats | null => {
    const st = fs.lstatSync(fsPath(this.own, rel), { throwIfNoEntry: false });
    if (!this.#made.has(rel)) this.#made.set(rel, st ? st.mode & 0o7777 : undefined);
    const uid = st?.uid ?? process.geteuid?.() ?? 0;
    const gid = st?.gid ?? process.getegid?.() ?? 0;
    const mtime = new Date(MARK_MTIME_MS);
    return {
      isDirectory: () => true,
      uid,
      gid,
      mode: fs.constants.S_IFDIR | MARK_MODE,
      mtime,
      mtimeMs: MARK_MTIME_MS,
      atime: mtime,
      atimeMs: MARK_MTIME_MS,
    } as unknown as fs.Stats;
  };

  get pending(): number {
    return this.#made.size;
  }

  /** Once the parent layers (`lowers`, topmost first) are complete: the attributes a sequential apply gives. */
  settle(lowers: string[]): void {
    for (const [rel, madeMode] of this.#made) {
      const path = fsPath(this.own, rel);
      const st = fs.lstatSync(path, { throwIfNoEntry: false });
      if (!st?.isDirectory()) continue; // replaced or removed later in the tar
      const lower = lowerDirStats(lowers, rel);
      if ((st.mode & 0o7777) === MARK_MODE) {
        if (lower) {
          fs.lchownSync(path, lower.uid, lower.gid); // owner first: chown may clear mode bits
          fs.chmodSync(path, lower.mode & 0o7777);
        } else {
          fs.chmodSync(path, madeMode ?? 0o755);
        }
      }
      if (st.mtimeMs === MARK_MTIME_MS) {
        const t = lower?.mtime ?? new Date();
        fs.lutimesSync(path, t, t);
      }
    }
    this.#made.clear();
  }
}
