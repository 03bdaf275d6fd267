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
import { OVERRIDE_STAT, singleIdNamespace } from '../../layer/owner-override.js';
import { type OverlayXattrPrefix, TRUSTED_OVERLAY } from '../../layer/whiteout.js';
import { NativeBatch, type OpMeta } from '../../layer/apply-batch.js';

export function lowerDirStats(lowers: string[], rel: string, xattrPrefix: OverlayXattrPrefix = TRUSTED_OVERLAY): fs.Stats | null {
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
      // Single-id rootless: the owner it could not set goes with it (layer/owner-override.ts).
      if (i === parts.length - 1) return singleIdNamespace() ? Object.assign(st, { ownerOverride: getXattr(path, OVERRIDE_STAT) }) : st;
      if (getXattr(path, `${xattrPrefix}opaque`)?.toString() === 'y') hidden = true;
    }
    if (hidden) return null;
  }
  return null;
}

/**
 * Implicit parent dirs of a layer applied while its parent layers are still
 * being applied (a parallel pull): their lowers are not final yet, so the
 * applier gets a marker instead (the dir's own owner, mode 04017, a time 1 ms
 * after the epoch), and settle(), called once every parent is complete, gives
 * each of them what a sequential apply would have: the lower dir's owner,
 * mode and time, or, when no lower shows it, the mode mkdir gave it.
 *
 * Which dirs to settle is known, not read back from the tree: the applier
 * tells explicitDir() when a directory entry gives a dir its own attributes
 * (an entry may well say 04017 too). settle() acts through the batched native
 * ops (openat2 beneath the layer root, no symlink followed, fchown/fchmod/
 * futimens on the dir's own fd): a dir the layer later replaced by a symlink,
 * or a symlink the layer put on its path, is skipped, never followed out of
 * the root.
 */
export const MARK_MODE = 0o4017;
const MARK_MTIME_MS = 1;

export class DeferredLowerDirs {
  /** Implicit dirs seen and not since given attributes by an entry, with the mode they had when made. */
  readonly #made = new Map<string, number | undefined>();

  /** `prefix`: where the layers keep overlay's xattrs (OverlayDriver.xattrPrefix). */
  constructor(
    readonly own: string,
    readonly prefix: OverlayXattrPrefix = TRUSTED_OVERLAY,
  ) {}

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

  /** The applier's `explicitDir` callback: an entry set this dir's attributes. */
  readonly explicitDir = (rel: string): void => {
    this.#made.delete(rel);
  };

  get pending(): number {
    return this.#made.size;
  }

  /** Once the parent layers (`lowers`, topmost first) are complete: the attributes a sequential apply gives. */
  async settle(lowers: string[]): Promise<void> {
    for (const [rel, madeMode] of this.#made) {
      const lower = lowerDirStats(lowers, rel, this.prefix);
      const meta: OpMeta = lower
        ? { owner: true, uid: lower.uid, gid: lower.gid, perm: lower.mode & 0o7777, mtime: lower.mtime }
        : { owner: false, uid: 0, gid: 0, perm: madeMode ?? 0o755, mtime: new Date() };
      const batch = new NativeBatch(this.own);
      try {
        const wait = batch.dirMeta(rel, rel, meta);
        if (wait) await wait;
        await batch.flush();
      } catch (err) {
        // Gone, or no longer a directory reached through directories: the layer replaced it
        // (a file, a symlink on its path). Nothing of ours to settle there.
        const code = (err as { code?: string; cause?: { code?: string } }).code;
        const cause = (err as { cause?: { code?: string } }).cause?.code;
        if (code !== 'TSG_UNSAFE_PATH' && cause !== 'ENOENT') throw err;
      } finally {
        batch.close();
      }
    }
    this.#made.clear();
  }
}
