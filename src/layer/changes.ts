/**
 * Changes between a layer and its parent, docker-diff style:
 *   A /path   added       C /path   changed       D /path   deleted
 *
 * Two ways to find them:
 *  - overlayChanges walks only the container's upper dir (cost grows with
 *    the changes, not the image): char 0/0 → D; a dir with the opaque xattr
 *    replaced whatever the lowers had there; anything else is A or C
 *    depending on whether a lower has it. redirect/metacopy xattrs would make
 *    the upper an incomplete picture: then it refuses, and the caller falls
 *    back to the naive walk.
 *  - naiveChanges compares two full trees (vfs, or any driver).
 *
 * The container's side (the upper, the container's tree) is live: a process
 * in it can swap entries while we read. It is read through util/safe-dir.ts
 * (dirfd walk, O_NOFOLLOW, fstat of the opened fd), never by path. The lower
 * layers are image layers tsgraph unpacked and nothing writes to; they are
 * looked at by path one component at a time, no symlink followed.
 * Names are byte strings (util/byte-path.ts).
 */
import * as fs from 'node:fs';
import { UnsupportedError } from '../errors.js';
import { getXattr } from './xattr.js';
import { displayPath, fsPath } from '../util/byte-path.js';
import { SafeNode, sameContent } from '../util/safe-dir.js';
import { type OverlayXattrPrefix, TRUSTED_OVERLAY, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js';

/** A (added), C (changed) or D (deleted). */
export type ChangeKind = 'A' | 'C' | 'D';

/** One change of a container against its image, docker-diff style. */
export interface Change {
  kind: ChangeKind;
  /** Absolute in the container, as a byte string: `/etc/passwd`. Show it with displayPath. */
  path: string;
}

export interface OverlayChange extends Change {
  /** The dir is opaque in the upper: lower content below it is gone. */
  opaque?: boolean;
}

function isWhiteout(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** How a diff-layout driver marks deletions and opaque dirs in its layer dirs. */
export type WhiteoutStyle = 'overlay' | 'aufs';

/** lstat of `rel` (byte string) below an image layer dir; null when absent. */
function lstatIn(lower: string, rel: string): fs.Stats | null {
  try {
    return fs.lstatSync(fsPath(lower, rel));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

const relJoin = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);

function whitedOut(style: WhiteoutStyle, lower: string, dir: string, name: string, st: fs.Stats | null): boolean {
  if (style === 'overlay') return st !== null && isWhiteout(st);
  return lstatIn(lower, relJoin(dir, `${WHITEOUT_PREFIX}${name}`)) !== null;
}

function isOpaqueDir(style: WhiteoutStyle, lower: string, rel: string, prefix: OverlayXattrPrefix): boolean {
  if (style === 'overlay') return getXattr(fsPath(lower, rel), `${prefix}opaque`)?.toString() === 'y';
  return lstatIn(lower, relJoin(rel, WHITEOUT_OPAQUE)) !== null;
}

/** Does this one lower hold `parts` below `dir`, every parent a real directory? */
function heldBy(lower: string, dir: string, parts: string[], style: WhiteoutStyle): boolean {
  let rel = dir;
  for (let i = 0; i < parts.length; i++) {
    rel = relJoin(rel, parts[i]!);
    const st = lstatIn(lower, rel);
    if (!st || (style === 'overlay' && isWhiteout(st))) return false;
    if (i < parts.length - 1 && !st.isDirectory()) return false;
  }
  return true;
}

/** Does any lower (topmost first) show `rel`, honouring whiteouts and opaque dirs? */
function inLowers(lowers: string[], rel: string, style: WhiteoutStyle = 'overlay', prefix: OverlayXattrPrefix = TRUSTED_OVERLAY): boolean {
  const parts = rel.split('/');
  for (const lower of lowers) {
    // Walk down; a whiteout or an opaque dir in this lower hides the deeper lowers.
    let dir = '';
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      const path = relJoin(dir, name);
      const st = lstatIn(lower, path);
      if (whitedOut(style, lower, dir, name, st)) return false;
      if (!st) break;
      if (i === parts.length - 1) return true;
      if (!st.isDirectory()) break;
      // Below an opaque dir only this very lower's entries exist.
      if (isOpaqueDir(style, lower, path, prefix)) return heldBy(lower, path, parts.slice(i + 1), style);
      dir = path;
    }
  }
  return false;
}

/** Walks the children of an opened dir in byte order, each opened without following and closed after. */
function eachChild(dir: SafeNode, fn: (node: SafeNode, name: string) => void, names = dir.names()): void {
  for (const name of names.sort()) {
    const node = dir.open(name);
    if (!node) continue; // gone since the listing
    try {
      fn(node, name);
    } finally {
      node.close();
    }
  }
}

function walkRoot<T>(root: string, fn: (node: SafeNode) => T): T {
  const node = SafeNode.openRoot(root);
  try {
    return fn(node);
  } finally {
    node.close();
  }
}

/**
 * Native changes of an aufs layer dir: `.wh.<name>` files are deletions,
 * `.wh..wh..opq` makes its dir opaque, other `.wh..wh.*` entries are aufs's
 * own bookkeeping (plnk, aufs) and are skipped.
 */
export function aufsChanges(diffDir: string, lowers: string[]): OverlayChange[] {
  const out: OverlayChange[] = [];
  const walk = (dir: SafeNode, names: string[]) => {
    for (const name of names) {
      if (name.startsWith(WHITEOUT_META_PREFIX)) continue;
      if (name.startsWith(WHITEOUT_PREFIX)) {
        const target = relJoin(dir.rel, name.slice(WHITEOUT_PREFIX.length));
        if (inLowers(lowers, target, 'aufs')) out.push({ kind: 'D', path: `/${target}` });
      }
    }
    eachChild(dir, (node, name) => {
      if (name.startsWith(WHITEOUT_PREFIX)) return;
      const childNames = node.stats.isDirectory() ? node.names() : [];
      const opaque = childNames.includes(WHITEOUT_OPAQUE);
      out.push({ kind: inLowers(lowers, node.rel, 'aufs') ? 'C' : 'A', path: `/${node.rel}`, ...(opaque ? { opaque: true } : {}) });
      if (node.stats.isDirectory()) walk(node, childNames);
    }, names.filter((n) => !n.startsWith(WHITEOUT_PREFIX)));
  };
  walkRoot(diffDir, (root) => walk(root, root.names()));
  // Deletions sort with their names, like the overlay walk.
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Native overlay changes. Throws TSG_UNSUPPORTED when redirect/metacopy xattrs appear.
 * `prefix`: where the layers keep overlay's xattrs (`user.overlay.` in a rootless store).
 */
export function overlayChanges(upper: string, lowers: string[], prefix: OverlayXattrPrefix = TRUSTED_OVERLAY): OverlayChange[] {
  const out: OverlayChange[] = [];
  const walk = (dir: SafeNode) =>
    eachChild(dir, (node) => {
      const r = node.rel;
      if (isWhiteout(node.stats)) {
        if (inLowers(lowers, r, 'overlay', prefix)) out.push({ kind: 'D', path: `/${r}` });
        return;
      }
      const xattrs = node.listXattrs(); // one call; values only for the names present
      for (const x of [`${prefix}redirect`, `${prefix}metacopy`]) {
        if (xattrs.includes(x)) {
          throw new UnsupportedError('TSG_UNSUPPORTED', `native overlay diff cannot read ${x} on /${displayPath(r)}; using the naive diff`);
        }
      }
      const existed = inLowers(lowers, r, 'overlay', prefix);
      const opaque = node.stats.isDirectory() && xattrs.includes(`${prefix}opaque`) && node.getXattr(`${prefix}opaque`)?.toString() === 'y';
      out.push({ kind: existed ? 'C' : 'A', path: `/${r}`, ...(opaque ? { opaque: true } : {}) });
      if (node.stats.isDirectory()) walk(node);
    });
  walkRoot(upper, walk);
  return out;
}

/** What makes two entries "the same" for the naive diff (all from fstat of the opened fds). */
function sameEntry(a: SafeNode, b: SafeNode): boolean {
  const sa = a.stats;
  const sb = b.stats;
  if (sa.mode !== sb.mode || sa.uid !== sb.uid || sa.gid !== sb.gid) return false;
  if (sa.isSymbolicLink()) return a.readlink() === b.readlink();
  if (sa.isCharacterDevice() || sa.isBlockDevice()) return sa.rdev === sb.rdev;
  if (sa.isFile()) {
    if (sa.size !== sb.size || sa.mtimeMs !== sb.mtimeMs) return false;
    if (!sameContent(a, b)) return false;
  }
  if (sa.isDirectory() && sa.mtimeMs !== sb.mtimeMs) return false;
  const xa = a.xattrs();
  const xb = b.xattrs();
  if (xa.size !== xb.size) return false;
  for (const [k, v] of xa) if (!xb.get(k)?.equals(v)) return false;
  return true;
}

/** Compares `layer` (full tree) against `parent` (full tree, or undefined for none). */
export function naiveChanges(parent: string | undefined, layer: string): Change[] {
  const out: Change[] = [];
  const addAll = (dir: SafeNode) =>
    eachChild(dir, (node) => {
      out.push({ kind: 'A', path: `/${node.rel}` });
      if (node.stats.isDirectory()) addAll(node);
    });
  const walk = (here: SafeNode, there: SafeNode) => {
    const names = new Set(here.names());
    for (const n of there.names()) names.add(n);
    for (const name of [...names].sort()) {
      const a = here.open(name);
      let b: SafeNode | null = null;
      try {
        b = there.open(name);
        const r = relJoin(here.rel, name);
        if (!a) {
          if (b) out.push({ kind: 'D', path: `/${r}` });
          continue;
        }
        if (!b) {
          out.push({ kind: 'A', path: `/${r}` });
          if (a.stats.isDirectory()) addAll(a);
          continue;
        }
        const mark = out.length;
        const changed = !sameEntry(a, b);
        if (changed) out.push({ kind: 'C', path: `/${r}` });
        if (a.stats.isDirectory()) {
          if (b.stats.isDirectory()) walk(a, b);
          else addAll(a);
          // Like docker: a directory with changes below it is reported too (its metadata travels with them).
          if (!changed && out.length > mark) out.splice(mark, 0, { kind: 'C', path: `/${r}` });
        }
      } finally {
        a?.close();
        b?.close();
      }
    }
  };
  walkRoot(layer, (here) => {
    if (parent === undefined) addAll(here);
    else walkRoot(parent, (there) => walk(here, there));
  });
  return out;
}

/** docker-diff lines, paths shown for people (non-UTF-8 bytes as \xNN). */
export function formatChanges(changes: Change[]): string {
  return changes.map((c) => `${c.kind} ${displayPath(c.path)}\n`).join('');
}
