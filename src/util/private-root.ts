/**
 * The store root is private (DESIGN: "directories 0700, owned by the user who
 * runs tsgraph"): blobs of private images and committed layers must not be
 * readable by other local users.
 *
 * - The root is created one component at a time (never Node's recursive
 *   mkdir, which spins forever on some procfs/sysfs paths such as
 *   `/proc/nope`), so creation is bounded by the number of components and a
 *   failure names the component.
 * - An existing root must be a directory owned by the current user, not a
 *   shared sticky directory like /tmp, empty or already a store (so a typo
 *   like `--root /etc` never chmods a system directory), and reached only
 *   through symlinks and directories no other user can change; group/other
 *   bits on it are removed.
 *   When the root itself was loose (a root from before this rule, or a
 *   `chmod -R`), every store directory below it is tightened too, except the
 *   layer trees (image content keeps its own modes) and mount points.
 * - On every open, the directories at depth 1 and 2 (content/, content/blobs,
 *   content/ingest, meta/*, locks/, <driver>/ and its subdirs) are checked:
 *   a few dozen stats.
 * Modes are set with chmod after mkdir, so no umask can loosen them.
 */
import * as fs from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { UsageError } from '../errors.js';
import { rootCheckedOutside } from '../rootless/userns.js';

const PRIVATE_DIR = 0o700;
const LOOSE = 0o077;
/** Top-level store dirs every root has. */
export const STORE_DIRS = ['content', 'content/blobs', 'content/blobs/sha256', 'content/ingest', 'meta', 'locks'];
/** Deep walk bound: the deepest store dir that is not a layer tree is <driver>/layers/<id>/<sub>. */
const MAX_DEPTH = 6;

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function refuse(root: string, why: string, cause?: unknown, what = 'the store root'): UsageError {
  return new UsageError('TSG_USAGE', `cannot use ${root} as ${what}: ${why}`, { cause, data: { path: root } });
}

/**
 * Creates `dir` and its missing parents one mkdir per component. Parents get
 * 0755 (like `mkdir -p`), `dir` itself 0700. Fails (never loops) when a
 * component cannot be made or is not a directory.
 */
export function mkdirBounded(dir: string, what = 'the store root'): void {
  const abs = resolve(dir);
  const root = abs;
  const parts = abs.split(sep).filter(Boolean);
  let cur: string = sep;
  for (let i = 0; i < parts.length; i++) {
    cur = join(cur, parts[i]!);
    const last = i === parts.length - 1;
    let st = fs.statSync(cur, { throwIfNoEntry: false });
    if (!st) {
      try {
        fs.mkdirSync(cur, { mode: last ? PRIVATE_DIR : 0o755 });
      } catch (err) {
        // A racing creator is fine; anything else (ENOENT on procfs, EROFS, EACCES) is final.
        if (errnoOf(err) !== 'EEXIST') throw refuse(root, `cannot create ${cur}: ${(err as Error).message}`, err, what);
      }
      st = fs.statSync(cur, { throwIfNoEntry: false });
      if (!st) throw refuse(root, `${cur} vanished or cannot be created on this filesystem`, undefined, what);
      if (last) fs.chmodSync(cur, PRIVATE_DIR);
    }
    if (!st.isDirectory()) throw refuse(root, `${cur} is not a directory`, undefined, what);
  }
}

export interface OpenRootOptions {
  /** Create the root when missing (default true). Read-only verbs pass false. */
  create?: boolean;
}

/**
 * Makes `root` usable as a private store root (see the file comment).
 * Returns false when it does not exist and `create` is false.
 */
export function openPrivateRoot(root: string, options: OpenRootOptions = {}): boolean {
  const uid = process.geteuid?.();
  // Before anything is created: nobody else may steer the path (their symlinks, dirs they can change).
  // In a rootless user namespace other users' dirs show as nobody: the path was checked outside it (rootless/gate.ts).
  if (!rootCheckedOutside(root)) checkPathTrusted(root, uid);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(root, { throwIfNoEntry: false });
  } catch (err) {
    throw refuse(root, (err as Error).message, err);
  }
  if (!st) {
    if (options.create === false) return false;
    mkdirBounded(root);
    st = fs.statSync(root);
  }
  if (!st.isDirectory()) throw refuse(root, 'it is not a directory');
  if (uid !== undefined && st.uid !== uid) {
    throw refuse(root, `it is owned by uid ${st.uid}, not by the user running tsgraph (uid ${uid}); the store must be private to its owner`);
  }
  const entries = fs.readdirSync(root);
  // A fresh tmpfs is 1777: sticky but empty is a dir of its own; sticky with entries is shared (/tmp).
  if (st.mode & 0o1000 && entries.length > 0) throw refuse(root, 'it is a shared directory (sticky bit, like /tmp); use a directory of its own');
  // Only what tsgraph makes may be in a root: `--root /etc` or a website with a content/ dir is not a store.
  const foreign = entries.filter((e) => !STORE_ENTRY.test(e));
  if (foreign.length) {
    throw refuse(root, `it is neither empty nor a tsgraph store (it holds ${foreign.slice(0, 3).map((e) => JSON.stringify(e)).join(', ')}); use an empty or new directory`);
  }
  // Someone else could write here: whatever they planted (symlinks, their own dirs) would be trusted from now on.
  if (st.mode & 0o022 && entries.length > 0) {
    throw refuse(root, `it was writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); check what is in it, then chmod go-w it`);
  }
  const wasLoose = (st.mode & LOOSE) !== 0 || (st.mode & 0o1000) !== 0;
  if (wasLoose) chmodPrivate(root, PRIVATE_DIR);
  for (const e of entries) requireOwnDir(root, e, uid);
  for (const d of STORE_DIRS) {
    const p = join(root, d);
    try {
      fs.mkdirSync(p, { mode: PRIVATE_DIR });
      fs.chmodSync(p, PRIVATE_DIR);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw refuse(root, `cannot create ${p}: ${(err as Error).message}`, err);
    }
    requireOwnDir(root, d, uid);
  }
  if (wasLoose) tightenTree(root, root, 0, fs.statSync(root).dev);
  else tightenTop(root);
  return true;
}

/** What a store root may hold: its own dirs, the drivers' homes, probes' scratch dirs. */
const STORE_ENTRY = /^(content|meta|locks|overlay|vfs|btrfs|aufs|\.probe-[0-9a-f]{8})$/;

/** `rel` under the root must be a real directory (not a symlink) owned by us, or the store is not ours. */
function requireOwnDir(root: string, rel: string, uid: number | undefined): void {
  const p = join(root, rel);
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) throw refuse(root, `${p} is not a directory (a ${st.isSymbolicLink() ? 'symlink' : 'file'}); a store holds only its own directories`);
  if (uid !== undefined && st.uid !== uid) throw refuse(root, `${p} is owned by uid ${st.uid}, not by the user running tsgraph (uid ${uid})`);
}

/**
 * Nobody else may be able to swap the root for something of theirs: a
 * symlink on the way must be owned by us or root (another user's symlink in a
 * shared dir would point tsgraph, running as root, at any directory), and
 * every directory above the root must be writable only by us or root, or be
 * sticky (like /tmp: others cannot rename our entries there).
 */
function checkPathTrusted(root: string, uid: number | undefined): void {
  if (uid === undefined) return;
  const trusted = (owner: number) => owner === uid || owner === 0;
  const abs = resolve(root);
  let cur: string = sep;
  let deepest: string = sep; // the deepest component that exists: what gets created goes in there
  for (const part of abs.split(sep).filter(Boolean)) {
    cur = join(cur, part);
    let lst: fs.Stats | undefined;
    try {
      lst = fs.lstatSync(cur, { throwIfNoEntry: false });
    } catch (err) {
      if (errnoOf(err) === 'ENOTDIR') break; // a file on the way: mkdirBounded says so
      throw refuse(root, `${cur}: ${(err as Error).message}`, err);
    }
    if (!lst) break;
    if (!lst.isDirectory() && !lst.isSymbolicLink()) break; // a file on the way: mkdirBounded says so
    if (lst.isSymbolicLink() && !trusted(lst.uid)) {
      throw refuse(root, `${cur} is a symlink owned by uid ${lst.uid}; another user could point the store anywhere`);
    }
    deepest = cur;
  }
  let real: string;
  try {
    real = fs.realpathSync(deepest);
  } catch (err) {
    throw refuse(root, `${deepest}: ${(err as Error).message}`, err);
  }
  // The existing part of the path: every dir on it, and the one new dirs are made in.
  let dir = abs === deepest ? join(real, '..') : real;
  for (let i = 0; i < 4096; i++) {
    const st = fs.statSync(dir);
    // Safe: owned by us or root, and either not writable by others or sticky (they cannot rename our entries).
    const safe = trusted(st.uid) && ((st.mode & 0o022) === 0 || (st.mode & 0o1000) !== 0);
    if (!safe) {
      throw refuse(root, `${dir} can be changed by other users (mode ${(st.mode & 0o7777).toString(8)}, owner uid ${st.uid}); they could replace the store`);
    }
    if (dir === sep) break;
    dir = join(dir, '..');
  }
}

/** Removes group/other bits from the store dirs at depth 1 and 2 (driver dirs appear after the driver opens). */
export function tightenTop(root: string): void {
  for (const a of readDirs(root)) {
    const pa = join(root, a);
    tightenOne(pa);
    for (const b of readDirs(pa)) if (!isLayerTree(`${a}/${b}`)) tightenOne(join(pa, b));
  }
}

/**
 * Layer trees are image content (their modes are the image's); mount points
 * show another filesystem. Neither is store metadata.
 *   overlay|vfs|btrfs: <driver>/layers/<id>/{diff,root,merged,work}
 *   aufs:              aufs/{diff,mnt}/<id>
 */
function isLayerTree(rel: string): boolean {
  return /^[^/]+\/layers\/[^/]+\/(diff|root|merged|work)$/.test(rel) || /^aufs\/(diff|mnt)\/[^/]+$/.test(rel);
}

function tightenTree(root: string, dir: string, depth: number, dev: number): void {
  if (depth >= MAX_DEPTH) return;
  for (const name of readDirs(dir)) {
    const p = join(dir, name);
    const rel = p.slice(root.length + 1);
    if (isLayerTree(rel)) continue;
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st?.isDirectory() || st.dev !== dev) continue;
    if (st.mode & LOOSE) chmodPrivate(p, st.mode);
    tightenTree(root, p, depth + 1, dev);
  }
}

function tightenOne(p: string): void {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (st?.isDirectory() && st.mode & LOOSE) chmodPrivate(p, st.mode);
}

function chmodPrivate(p: string, mode: number): void {
  try {
    fs.chmodSync(p, mode & 0o7700);
  } catch (err) {
    // e.g. EPERM on a dir someone else owns: say so instead of a bare errno.
    throw new UsageError('TSG_USAGE', `cannot make ${p} private (the store must not be readable by other users): ${(err as Error).message}`, { cause: err, data: { path: p } });
  }
}

function readDirs(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}
