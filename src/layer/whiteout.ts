/**
 * Whiteouts and opaque directories.
 *
 * In an OCI layer a deletion is a file `.wh.<name>` and "hide everything
 * below this directory from lower layers" is an entry `.wh..wh..opq` inside
 * it. Each driver stores these its own way:
 *   overlay  `<name>` as a char device 0/0; opaque as xattr trusted.overlay.opaque=y
 *   naive    (vfs, btrfs: a layer is a full tree) the lower entries are deleted
 *   aufs     the OCI names as they are (OCI took its format from aufs)
 *
 * OCI rule kept by every format: a whiteout applies only to lower layers,
 * never to entries of its own layer (whatever their order in the tar).
 */
import * as fs from 'node:fs';
import { UnsafeError } from '../errors.js';
import { setXattr, mknod } from './xattr.js';
import { joinRel, unsafe } from './paths.js';

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';

export type WhiteoutEntry = { kind: 'opaque' } | { kind: 'whiteout'; name: string } | { kind: 'meta' };

/** Classifies a basename; undefined for ordinary names. Throws on malformed whiteouts. */
export function classifyWhiteout(base: string, fullName: string): WhiteoutEntry | undefined {
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (base === WHITEOUT_OPAQUE) return { kind: 'opaque' };
  // aufs keeps hardlink and bookkeeping dirs under .wh..wh.*; they carry no meaning for us.
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..') throw unsafe(fullName, `whiteout of ${JSON.stringify(name)} is meaningless`);
  return { kind: 'whiteout', name };
}

/** What a whiteout format may do to the layer tree being written. */
export interface ApplyContext {
  readonly root: string;
  abs(rel: string): string;
  /** True when `rel` was written by the layer being applied. */
  ownsPath(rel: string): boolean;
  /** Makes `rel` a real directory (parents too), replacing a lower non-directory. */
  ensureDir(rel: string): void;
  /** Deletes `rel` (recursively) if present. */
  removePath(rel: string): void;
  /** Records that the format created `rel` (a whiteout device or marker file). */
  notePresent(rel: string): void;
}

export interface WhiteoutFormat {
  readonly name: 'overlay' | 'naive' | 'aufs';
  whiteout(ctx: ApplyContext, dir: string, name: string): void;
  opaque(ctx: ApplyContext, dir: string): void;
  /** The xattr name to store for an image-supplied one (escaping reserved names); null drops it. */
  xattrName(name: string): string | null;
}

const OVERLAY_PREFIX = 'trusted.overlay.';

/**
 * overlayfs (kernel ≥ 6.7) escapes `trusted.overlay.overlay.X` in a layer to
 * `trusted.overlay.X` in the merged view. Storing image xattrs that way means
 * an image can never forge opaque/redirect/metacopy metadata, yet the
 * container still sees exactly the xattr the image carried.
 */
export function escapeOverlayXattr(name: string): string {
  return name.startsWith(OVERLAY_PREFIX) ? `${OVERLAY_PREFIX}overlay.${name.slice(OVERLAY_PREFIX.length)}` : name;
}

export function unescapeOverlayXattr(name: string): string {
  return name.startsWith(`${OVERLAY_PREFIX}overlay.`) ? `${OVERLAY_PREFIX}${name.slice(OVERLAY_PREFIX.length + 8)}` : name;
}

export const overlayFormat: WhiteoutFormat = {
  name: 'overlay',
  whiteout(ctx, dir, name) {
    const rel = joinRel(dir, name);
    if (ctx.ownsPath(rel)) return;
    ctx.ensureDir(dir);
    ctx.removePath(rel);
    mknod(ctx.abs(rel), 'char', 0, 0, 0);
    ctx.notePresent(rel);
  },
  opaque(ctx, dir) {
    ctx.ensureDir(dir);
    setXattr(ctx.abs(dir), 'trusted.overlay.opaque', 'y');
  },
  xattrName: escapeOverlayXattr,
};

/** For drivers whose layers are full trees: a deletion deletes. */
export const naiveFormat: WhiteoutFormat = {
  name: 'naive',
  whiteout(ctx, dir, name) {
    const rel = joinRel(dir, name);
    if (ctx.ownsPath(rel)) return;
    // Parents first: a deletion must never travel through a symlink (rmSync
    // would follow one in a parent position). A lower symlink there becomes a
    // directory, as an overlay mount would show it.
    ctx.ensureDir(dir);
    ctx.removePath(rel);
  },
  opaque(ctx, dir) {
    ctx.ensureDir(dir);
    clearLowerEntries(ctx, dir);
  },
  xattrName: (name) => name,
};

// Removes what lower layers put below `dir`, keeping this layer's own entries.
function clearLowerEntries(ctx: ApplyContext, dir: string): void {
  for (const child of fs.readdirSync(ctx.abs(dir))) {
    const rel = joinRel(dir, child);
    if (!ctx.ownsPath(rel)) {
      ctx.removePath(rel);
    } else if (fs.lstatSync(ctx.abs(rel)).isDirectory()) {
      clearLowerEntries(ctx, rel);
    }
  }
}

/** aufs: the OCI representation is aufs's own; keep the marker files. */
export const aufsFormat: WhiteoutFormat = {
  name: 'aufs',
  whiteout(ctx, dir, name) {
    const rel = joinRel(dir, name);
    if (ctx.ownsPath(rel)) return;
    ctx.ensureDir(dir);
    const marker = joinRel(dir, `${WHITEOUT_PREFIX}${name}`);
    ctx.removePath(marker);
    fs.writeFileSync(ctx.abs(marker), '', { flag: 'wx', mode: 0o444 });
    ctx.notePresent(marker);
  },
  opaque(ctx, dir) {
    ctx.ensureDir(dir);
    const marker = joinRel(dir, WHITEOUT_OPAQUE);
    ctx.removePath(marker);
    fs.writeFileSync(ctx.abs(marker), '', { flag: 'wx', mode: 0o444 });
    ctx.notePresent(marker);
  },
  xattrName: (name) => name,
};

export function isUnsafe(err: unknown): err is UnsafeError {
  return err instanceof UnsafeError;
}
