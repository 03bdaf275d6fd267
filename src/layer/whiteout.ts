/**
 * Whiteouts and opaque directories.
 *
 * In an OCI layer a deletion is a file `.wh.<name>` and "hide everything
 * below this directory from lower layers" is an entry `.wh..wh..opq` inside
 * it. Each driver stores these its own way:
 *   overlay  `<name>` as a char device 0/0; opaque as xattr trusted.overlay.opaque=y
 *            (user.overlay.opaque=y in a rootless store: userxattr)
 *   naive    (vfs, btrfs: a layer is a full tree) the lower entries are deleted
 *   aufs     the OCI names as they are (OCI took its format from aufs)
 *
 * OCI rule kept for every format (by the applier, apply.ts): a whiteout or
 * opaque marker applies only to lower layers, never to entries of its own
 * layer, whatever their order in the tar.
 */
import * as fs from 'node:fs';
import { UnsafeError } from '../errors.js';
import { setXattr, mknod } from './xattr.js';
import { baseOf, joinRel, parentOf, unsafe } from './paths.js';
import { readdirBytes } from '../util/byte-path.js';

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

/** What a whiteout format may do to the layer tree being written. Paths are byte strings. */
export interface ApplyContext {
  readonly root: string;
  /** `rel` under the root, as a Buffer for fs calls. */
  abs(rel: string): Buffer;
  /**
   * True when `rel` belongs to the layer being applied: one of its own entries,
   * or a directory its entries, whiteouts or opaque markers sit in.
   */
  ownsPath(rel: string): boolean;
  /** Makes `rel` a real directory (parents too), replacing a lower non-directory. */
  ensureDir(rel: string): void;
  /** Deletes `rel` (recursively) if present. */
  removePath(rel: string): void;
  /** Records that the format created `rel` (a whiteout device or marker file). */
  notePresent(rel: string): void;
}

/**
 * How a driver stores deletions. The applier keeps the OCI rule (whiteouts and
 * opaque markers act on lower layers only, whatever their order in the tar)
 * and calls the format only for what is left to do:
 *  - whiteout: lower `dir/name` must disappear; the layer has nothing there;
 *  - opaque: lower content below `dir` must disappear; the layer's own stays;
 *  - recreated: the layer whited out `rel` and then made it again (a new
 *    directory must not show the lower one's content).
 */
export interface WhiteoutFormat {
  readonly name: 'overlay' | 'naive' | 'aufs';
  whiteout(ctx: ApplyContext, dir: string, name: string): void;
  opaque(ctx: ApplyContext, dir: string): void;
  recreated(ctx: ApplyContext, rel: string, isDir: boolean): void;
  /** The xattr name to store for an image-supplied one (escaping reserved names); null drops it. */
  xattrName(name: string): string | null;
}

/**
 * Where overlay keeps its own metadata: `trusted.overlay.*` (needs
 * CAP_SYS_ADMIN in the initial namespace), or `user.overlay.*` for a mount
 * with `userxattr` (rootless: a mount made in a user namespace).
 */
export type OverlayXattrPrefix = 'trusted.overlay.' | 'user.overlay.';
export const TRUSTED_OVERLAY: OverlayXattrPrefix = 'trusted.overlay.';
export const USER_OVERLAY: OverlayXattrPrefix = 'user.overlay.';

/**
 * overlayfs (kernel ≥ 6.7) escapes `<prefix>overlay.X` in a layer to
 * `<prefix>X` in the merged view. Storing image xattrs that way means
 * an image can never forge opaque/redirect/metacopy metadata, yet the
 * container still sees exactly the xattr the image carried.
 */
export function escapeOverlayXattr(name: string, prefix: OverlayXattrPrefix = TRUSTED_OVERLAY): string {
  return name.startsWith(prefix) ? `${prefix}overlay.${name.slice(prefix.length)}` : name;
}

export function unescapeOverlayXattr(name: string, prefix: OverlayXattrPrefix = TRUSTED_OVERLAY): string {
  return name.startsWith(`${prefix}overlay.`) ? `${prefix}${name.slice(prefix.length + 8)}` : name;
}

/**
 * The overlay format for one xattr namespace. With `user.overlay.` (a
 * rootless store, written in a user namespace) image xattrs in `trusted.*`
 * cannot be stored at all (the kernel wants CAP_SYS_ADMIN in the initial
 * namespace) and are dropped, as containers/storage does rootless; whiteouts
 * stay char 0/0 devices, which the kernel lets anyone make (Linux ≥ 5.8).
 */
export function overlayFormatFor(prefix: OverlayXattrPrefix): WhiteoutFormat {
  const opaqueName = `${prefix}opaque`;
  const rootless = prefix === USER_OVERLAY;
  return {
    name: 'overlay',
    whiteout(ctx, dir, name) {
      const rel = joinRel(dir, name);
      ctx.ensureDir(dir);
      ctx.removePath(rel);
      mknod(ctx.abs(rel), 'char', 0, 0, 0);
      ctx.notePresent(rel);
    },
    opaque(ctx, dir) {
      ctx.ensureDir(dir);
      setXattr(ctx.abs(dir), opaqueName, 'y');
    },
    recreated(ctx, rel, isDir) {
      // The whiteout device was replaced; a directory in its place would merge
      // with the lower one unless it is opaque.
      if (isDir) setXattr(ctx.abs(rel), opaqueName, 'y');
    },
    xattrName: (name) => (rootless && name.startsWith('trusted.') ? null : escapeOverlayXattr(name, prefix)),
  };
}

export const overlayFormat: WhiteoutFormat = overlayFormatFor(TRUSTED_OVERLAY);
/** Rootless overlay (mounted with `userxattr`): opaque dirs as user.overlay.opaque. */
export const userxattrOverlayFormat: WhiteoutFormat = overlayFormatFor(USER_OVERLAY);

/** For drivers whose layers are full trees: a deletion deletes. */
export const naiveFormat: WhiteoutFormat = {
  name: 'naive',
  whiteout(ctx, dir, name) {
    // Parents first: a deletion must never travel through a symlink (rmSync
    // would follow one in a parent position). A lower symlink there becomes a
    // directory, as an overlay mount would show it.
    ctx.ensureDir(dir);
    ctx.removePath(joinRel(dir, name));
  },
  opaque(ctx, dir) {
    ctx.ensureDir(dir);
    clearLowerEntries(ctx, dir);
  },
  // The lower entry was deleted when whited out; what the layer makes now is all there is.
  recreated() {},
  xattrName: (name) => name,
};

// Removes what lower layers put below `dir`, keeping this layer's own entries
// (and the directories they sit in, whose lower content goes too).
function clearLowerEntries(ctx: ApplyContext, dir: string): void {
  for (const child of readdirBytes(ctx.abs(dir))) {
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
    ctx.ensureDir(dir);
    writeMarker(ctx, joinRel(dir, `${WHITEOUT_PREFIX}${name}`));
  },
  opaque(ctx, dir) {
    ctx.ensureDir(dir);
    writeMarker(ctx, joinRel(dir, WHITEOUT_OPAQUE));
  },
  recreated(ctx, rel, isDir) {
    // What aufs itself writes for "deleted, then made again": the entry, no
    // whiteout beside it, and a directory marked opaque.
    ctx.removePath(joinRel(parentOf(rel), `${WHITEOUT_PREFIX}${baseOf(rel)}`));
    if (isDir) writeMarker(ctx, joinRel(rel, WHITEOUT_OPAQUE));
  },
  xattrName: (name) => name,
};

function writeMarker(ctx: ApplyContext, marker: string): void {
  ctx.removePath(marker);
  fs.writeFileSync(ctx.abs(marker), '', { flag: 'wx', mode: 0o444 });
  ctx.notePresent(marker);
}

export function isUnsafe(err: unknown): err is UnsafeError {
  return err instanceof UnsafeError;
}
