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
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { UnsupportedError } from '../errors.js';
import { getXattr, readXattrs } from './xattr.js';
import { lstatOrNull } from '../util/fs-helpers.js';
import { WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js';

export type ChangeKind = 'A' | 'C' | 'D';

export interface Change {
  kind: ChangeKind;
  /** Absolute in the container: `/etc/passwd`. */
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

function whitedOut(style: WhiteoutStyle, dir: string, name: string, st: fs.Stats | null): boolean {
  if (style === 'overlay') return st !== null && isWhiteout(st);
  return lstatOrNull(join(dir, `${WHITEOUT_PREFIX}${name}`)) !== null;
}

function isOpaqueDir(style: WhiteoutStyle, dir: string): boolean {
  if (style === 'overlay') return getXattr(dir, 'trusted.overlay.opaque')?.toString() === 'y';
  return lstatOrNull(join(dir, WHITEOUT_OPAQUE)) !== null;
}

/** Does any lower (topmost first) show `rel`, honouring whiteouts and opaque dirs? */
function inLowers(lowers: string[], rel: string, style: WhiteoutStyle = 'overlay'): boolean {
  const parts = rel.split('/');
  for (const lower of lowers) {
    // Walk down; a whiteout or an opaque dir in this lower hides the deeper lowers.
    let dir = lower;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      const path = join(dir, name);
      const st = lstatOrNull(path);
      if (whitedOut(style, dir, name, st)) return false;
      if (!st) break;
      if (i === parts.length - 1) return true;
      if (!st.isDirectory()) break;
      if (isOpaqueDir(style, path)) {
        // Below an opaque dir only this very lower's entries exist.
        const rest = join(path, ...parts.slice(i + 1));
        const rst = lstatOrNull(rest);
        return rst !== null && !(style === 'overlay' && isWhiteout(rst));
      }
      dir = path;
    }
  }
  return false;
}

/**
 * Native changes of an aufs layer dir: `.wh.<name>` files are deletions,
 * `.wh..wh..opq` makes its dir opaque, other `.wh..wh.*` entries are aufs's
 * own bookkeeping (plnk, aufs) and are skipped.
 */
export function aufsChanges(diffDir: string, lowers: string[]): OverlayChange[] {
  const out: OverlayChange[] = [];
  const walk = (rel: string) => {
    const abs = rel ? join(diffDir, rel) : diffDir;
    for (const name of fs.readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (name.startsWith(WHITEOUT_META_PREFIX)) continue;
      if (name.startsWith(WHITEOUT_PREFIX)) {
        const target = rel ? `${rel}/${name.slice(WHITEOUT_PREFIX.length)}` : name.slice(WHITEOUT_PREFIX.length);
        if (inLowers(lowers, target, 'aufs')) out.push({ kind: 'D', path: `/${target}` });
        continue;
      }
      const st = fs.lstatSync(join(diffDir, r));
      const opaque = st.isDirectory() && lstatOrNull(join(diffDir, r, WHITEOUT_OPAQUE)) !== null;
      out.push({ kind: inLowers(lowers, r, 'aufs') ? 'C' : 'A', path: `/${r}`, ...(opaque ? { opaque: true } : {}) });
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  // Deletions sort with their names, like the overlay walk.
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Native overlay changes. Throws TSG_UNSUPPORTED when redirect/metacopy xattrs appear. */
export function overlayChanges(upper: string, lowers: string[]): OverlayChange[] {
  const out: OverlayChange[] = [];
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(rel ? join(upper, rel) : upper).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(upper, r);
      const st = fs.lstatSync(abs);
      if (isWhiteout(st)) {
        if (inLowers(lowers, r)) out.push({ kind: 'D', path: `/${r}` });
        continue;
      }
      for (const x of ['trusted.overlay.redirect', 'trusted.overlay.metacopy']) {
        if (getXattr(abs, x) !== null) {
          throw new UnsupportedError('TSG_UNSUPPORTED', `native overlay diff cannot read ${x} on /${r}; using the naive diff`);
        }
      }
      const existed = inLowers(lowers, r);
      const opaque = st.isDirectory() && getXattr(abs, 'trusted.overlay.opaque')?.toString() === 'y';
      out.push({ kind: existed ? 'C' : 'A', path: `/${r}`, ...(opaque ? { opaque: true } : {}) });
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

/** What makes two entries "the same" for the naive diff. */
function sameEntry(a: string, sa: fs.Stats, b: string, sb: fs.Stats): boolean {
  if ((sa.mode & 0o170000) !== (sb.mode & 0o170000)) return false;
  if (sa.mode !== sb.mode || sa.uid !== sb.uid || sa.gid !== sb.gid) return false;
  if (sa.isSymbolicLink()) return fs.readlinkSync(a) === fs.readlinkSync(b);
  if (sa.isCharacterDevice() || sa.isBlockDevice()) return sa.rdev === sb.rdev;
  if (sa.isFile()) {
    if (sa.size !== sb.size) return false;
    if (sa.mtimeMs !== sb.mtimeMs || !fs.readFileSync(a).equals(fs.readFileSync(b))) return false;
  }
  if (sa.isDirectory() && sa.mtimeMs !== sb.mtimeMs) return false;
  const xa = readXattrs(a);
  const xb = readXattrs(b);
  if (xa.size !== xb.size) return false;
  for (const [k, v] of xa) if (!xb.get(k)?.equals(v)) return false;
  return true;
}

/** Compares `layer` (full tree) against `parent` (full tree, or undefined for none). */
export function naiveChanges(parent: string | undefined, layer: string): Change[] {
  const out: Change[] = [];
  const walk = (rel: string) => {
    const here = rel ? join(layer, rel) : layer;
    const there = parent === undefined ? undefined : rel ? join(parent, rel) : parent;
    const names = new Set(fs.readdirSync(here));
    const before = there && lstatOrNull(there)?.isDirectory() ? fs.readdirSync(there) : [];
    for (const n of before) if (!names.has(n)) names.add(n);
    for (const name of [...names].sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const a = join(layer, r);
      const sa = lstatOrNull(a);
      const b = parent === undefined ? undefined : join(parent, r);
      const sb = b ? lstatOrNull(b) : null;
      if (!sa) {
        out.push({ kind: 'D', path: `/${r}` });
        continue;
      }
      if (!sb) {
        out.push({ kind: 'A', path: `/${r}` });
        if (sa.isDirectory()) addAll(r);
        continue;
      }
      const mark = out.length;
      const changed = !sameEntry(a, sa, b!, sb);
      if (changed) out.push({ kind: 'C', path: `/${r}` });
      if (sa.isDirectory()) {
        if (sb.isDirectory()) walk(r);
        else addAll(r);
        // Like docker: a directory with changes below it is reported too (its metadata travels with them).
        if (!changed && out.length > mark) out.splice(mark, 0, { kind: 'C', path: `/${r}` });
      }
    }
  };
  const addAll = (rel: string) => {
    for (const name of fs.readdirSync(join(layer, rel)).sort()) {
      const r = `${rel}/${name}`;
      out.push({ kind: 'A', path: `/${r}` });
      if (fs.lstatSync(join(layer, r)).isDirectory()) addAll(r);
    }
  };
  walk('');
  return out;
}

export function formatChanges(changes: Change[]): string {
  return changes.map((c) => `${c.kind} ${c.path}\n`).join('');
}
