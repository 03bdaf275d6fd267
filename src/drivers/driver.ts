/**
 * GraphDriver: how a driver stores layers and makes them a root filesystem.
 *
 * Vocabulary (see docs/architecture.md):
 *  - a *layer* is a read-only filesystem diff named by its chainId (hex);
 *    `create(id, parent)` makes an empty one and `applyDiff` fills it once;
 *  - a *container layer* is writable, created with `{ readWrite: true }` on
 *    top of an image's top layer;
 *  - `get` mounts a layer with its parents (refcounted, across processes) and
 *    returns the mount point; `put` releases one reference and unmounts at
 *    zero. Every driver mounts (vfs and btrfs with a bind mount), so a
 *    mounted layer is always a mount point.
 *
 * Lifecycle: create → applyDiff (read-only layers) → get/put any number of
 * times → remove (refused while children exist or while mounted).
 * Diffs and change lists are not part of this interface: they are computed by
 * src/layer's differ, which asks drivers for paths (containerd's split of
 * snapshotter and differ).
 */
import type { Stats } from 'node:fs';
import type { Readable } from 'node:stream';
import type { ApplyResult } from '../layer/apply.js';
import type { PaxRecords } from '../layer/pax.js';
import type { MountOptions, MountSpec } from '../mount/mount-spec.js';

export interface CreateOptions {
  /** A container layer (upper) rather than an image layer. */
  readWrite?: boolean;
}

export interface GetOptions {
  /** Mount read-only (a container layer is otherwise writable). */
  readOnly?: boolean;
  /** SELinux label, extra overlay options, idmap (src/mount checks them); used by the mount that the first reference makes. */
  mount?: Pick<MountOptions, 'label' | 'overlayOptions' | 'idmap'> | undefined;
  /**
   * Names those options (src/mount mountOptionsKey): a layer already mounted
   * with other ones is refused (TSG_IN_USE) instead of handed out as is.
   */
  mountKey?: string | undefined;
}

export interface ApplyDiffOptions {
  signal?: AbortSignal | undefined;
  /** Byte-exact PAX records from the TarTap the tar went through (binary xattrs). */
  pax?: PaxRecords | undefined;
  /**
   * Replaces how a `diff`-layout driver reads its parent layers for a parent
   * directory the tar does not list (see ApplyOptions.lowerDir): a pull that
   * applies a layer while its parents are still being applied defers that
   * read (overlay/lower-dir.ts DeferredLowerDirs).
   */
  lowerDir?: ((rel: string) => Stats | null) | undefined;
  /** Goes with `lowerDir`: see ApplyOptions.explicitDir. */
  explicitDir?: ((rel: string) => void) | undefined;
}

export interface PutOptions {
  /** Drop every reference (and so unmount), as removing a container does. */
  all?: boolean;
}

export interface Probe {
  name: string;
  ok: boolean;
  detail: string;
}

/** A driver's health: where it lives, the backing filesystem and each probe's result (tsgraph doctor). */
export interface DriverStatus {
  driver: string;
  home: string;
  /** Filesystem type under the driver's home (`ext4`, `tmpfs`, `btrfs`, …). */
  backingFs: string;
  probes: Probe[];
}

/** Where a layer's files are, for the differ. */
export interface LayerPaths {
  /** overlay: the layer's own diff dir; vfs/btrfs: the layer's full tree. */
  own: string;
  /** overlay: the parents' diff dirs, topmost first; full-tree drivers: [the parent's tree] or []. */
  parents: string[];
}

/** What a driver's layers look like and how deep they stack. */
export interface DriverCapabilities {
  /** `diff`: a layer dir holds only its changes (overlay, aufs); `full`: the whole tree (vfs, btrfs). */
  layout: 'diff' | 'full';
  /** How a `diff` layout marks deletions: overlay (char 0/0 + xattr) or aufs (`.wh.` files). */
  whiteouts?: 'overlay' | 'aufs';
  /** Deepest layer chain the driver can mount; undefined = no limit. */
  maxDepth?: number | undefined;
}

/** A graph driver (overlay, btrfs, aufs, vfs): layers by id, mounted with their parents, refcounted (see the file comment). */
export interface GraphDriver {
  readonly name: string;
  readonly home: string;
  readonly capabilities: DriverCapabilities;
  /** Creates an empty layer `id` on `parent` (undefined: a base layer). */
  create(id: string, parent: string | undefined, options?: CreateOptions): Promise<void>;
  /** Writes an uncompressed layer tar into `id` (created on `parent`). */
  applyDiff(id: string, parent: string | undefined, tar: Readable, options?: ApplyDiffOptions): Promise<ApplyResult>;
  /** Mounts `id` (one more reference) and returns its root path. */
  get(id: string, options?: GetOptions): Promise<string>;
  /** Drops one reference (every one with `all`); unmounts at zero. */
  put(id: string, options?: PutOptions): Promise<void>;
  /** Describes how `id` would be mounted, without mounting. */
  mountSpec(id: string, options?: GetOptions): MountSpec;
  exists(id: string): boolean;
  /** Paths the differ reads (no mount needed). */
  layerPaths(id: string): LayerPaths;
  /** Deletes `id`; TSG_IN_USE while it has children or is mounted. */
  remove(id: string): Promise<void>;
  status(): Promise<DriverStatus>;
  /** Removes staging leftovers from crashes; unmounts nothing that is in use. */
  cleanup(): Promise<void>;
}
