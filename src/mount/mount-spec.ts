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

/** What a driver says to mount, as data: an overlay, a bind mount or aufs branches. */
export type MountSpec = OverlayMountSpec | BindMountSpec | AufsMountSpec;

/** The kernel's cap on overlay lower layers (fs/overlayfs: OVL_MAX_STACK). */
export const MAX_OVERLAY_LOWERS = 500;

/**
 * One range of an id map: `size` ids from `containerId` (as the container,
 * and the files on disk, see them) map to host ids from `hostId` — the
 * `uid_map` line `containerId hostId size`, runc's `{containerID, hostID, size}`.
 */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

/**
 * How an idmapped mount maps owners: through an existing user namespace (a
 * path such as `/proc/PID/ns/user`, or an open fd of one), or through maps
 * tsgraph makes a user namespace for. A file owned by `containerId` on disk
 * then shows as `hostId` on the host, and as `containerId` again inside a
 * container whose user namespace has the same maps.
 */
export type IdmapOption = { userns: string | number } | { uidMap: IdMapping[]; gidMap: IdMapping[] };

/** Options for mounting a container (`Store.mount`, `Store.mountSpec`). */
export interface MountOptions {
  /** Mount read-only (a container is otherwise writable). */
  readOnly?: boolean | undefined;
  /**
   * SELinux label for every file of the mount (`context=` of overlay), e.g.
   * `system_u:object_r:container_file_t:s0:c1,c2`. Overlay only: a bind mount
   * (vfs, btrfs) cannot carry one.
   */
  label?: string | undefined;
  /**
   * Extra overlay parameters, `key=value` or `flag`:
   * `xino=on|off|auto`, `uuid=on|off|null|auto`, `default_permissions`, and
   * tsgraph's own `index=off`, `redirect_dir=off|nofollow`, `metacopy=off`
   * restated. Anything naming layer dirs (lowerdir, upperdir, workdir,
   * datadir) or making the upper unsafe to diff or share (metacopy=on,
   * redirect_dir=on, index=on, userxattr, volatile…) is refused with TSG_USAGE.
   */
  overlayOptions?: string[] | undefined;
  /** An idmapped mount (mount_setattr MOUNT_ATTR_IDMAP): owners seen through a user namespace's maps. */
  idmap?: IdmapOption | undefined;
}

/** One fs-context parameter: `fsconfig(FSCONFIG_SET_STRING, key, value)`, or `FSCONFIG_SET_FLAG` when the value is null. */
export type FsParam = [key: string, value: string | null];

/**
 * A container's mount as data, for a runtime that mounts it itself in its
 * own mount namespace (`Store.mountSpec`). Overlay: `fsopen("overlay")`,
 * then `fsconfig` each of `options` in order (a value longer than 255 bytes
 * — fsconfig's limit — goes as an fd: `FSCONFIG_SET_FD` or
 * `/proc/self/fd/N`), `FSCONFIG_CMD_CREATE`, `fsmount`, `move_mount`; or
 * classic `mount(source, target, "overlay", flags, data)` when `data` is
 * set. Bind (vfs, btrfs): `mount(source, target, NULL, MS_BIND)`, then a
 * read-only remount when `readOnly`.
 */
export interface ContainerMountSpec {
  /** `overlay` (fsopen/mount type), `bind` (vfs, btrfs) or `aufs`. */
  type: 'overlay' | 'bind' | 'aufs';
  /** The mount source: `tsgraph` for overlay (a name only), the directory for a bind mount, `none` for aufs. */
  source: string;
  /** fs-context parameters in the order tsgraph's own mount sets them (`source` first, one `lowerdir+` per layer, topmost first). Empty for bind. */
  options: FsParam[];
  /**
   * The same as a classic mount(2) option string, when it fits in 4095
   * bytes and no path needs escaping; undefined otherwise. Past one page the
   * kernel truncates the string and has been seen to mount the wrong layers
   * without an error: never build it yourself by joining `options`.
   */
  data: string | undefined;
  /** Mount flags: MOUNT_ATTR_RDONLY / MS_RDONLY when true. */
  readOnly: boolean;
  /** The directories behind the mount. */
  layers: {
    /** Read-only layers, topmost first (overlay's lowers; empty for bind). */
    lowers: string[];
    /** The writable layer: overlay's upperdir, or the bind source. Undefined for a read-only image layer. */
    upper: string | undefined;
    /** overlay's workdir (on the same filesystem as upper). */
    work: string | undefined;
  };
  /**
   * Set when the mount is to be idmapped: each layer directory (overlay) or
   * the bind source must then be an idmapped mount of the directory
   * (open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP)) — overlay
   * itself cannot be idmapped (this kernel refuses MOUNT_ATTR_IDMAP on it).
   * `Store.mount` does all of that itself.
   */
  idmap: IdmapOption | undefined;
  /**
   * Overlay with an idmap: the maps for the upper and work dir's idmapped
   * mount — `idmap`'s own plus one line mapping a spare on-disk id to host 0,
   * because overlay creates its work files and whiteouts as whoever mounted
   * it and an idmapped mount refuses ids its maps lack (overlay then mounts
   * read-only). docs/idmapped-mounts.md. Undefined otherwise.
   */
  upperIdmap?: { uidMap: IdMapping[]; gidMap: IdMapping[] } | undefined;
}
