/**
 * MountSpec: what a driver says to mount, as data. Drivers describe; src/mount
 * mounts. A runtime may also take the spec and mount it itself.
 */

/** An overlay: `lowers[0]` is the topmost lower layer. No upper = read-only. */
export interface OverlayMountSpec {
  type: 'overlay';
  lowers: string[];
  upper?: string | undefined;
  work?: string | undefined;
  /** Extra overlay parameters, `key=value` or `flag`. */
  options: string[];
}

/** A directory used as is (vfs, btrfs subvolumes): bind-mounted when a mount point is wanted. */
export interface BindMountSpec {
  type: 'bind';
  source: string;
}

/** aufs branches, top (rw) first; mounted with classic mount(2) and `append:` remounts. */
export interface AufsMountSpec {
  type: 'aufs';
  branches: Array<{ path: string; mode: 'rw' | 'ro' | 'ro+wh' }>;
  options: string[];
}

export type MountSpec = OverlayMountSpec | BindMountSpec | AufsMountSpec;

/** The kernel's cap on overlay lower layers (fs/overlayfs: OVL_MAX_STACK). */
export const MAX_OVERLAY_LOWERS = 500;
