/**
 * Loads the native addon (built by `npm install` through node-gyp). This file
 * only types and loads it; mounting goes through src/mount, locking through
 * src/store/lock.ts. Keep the typed surface in step with native/*.cc.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnsupportedError } from './errors.js';

export interface NativeBinding {
  /** flock(2); returns false when LOCK_NB was given and the lock is held elsewhere. */
  flock(fd: number, operation: number): boolean;
  /**
   * Makes SIGINT/SIGTERM end the process `graceMs` after they arrive even
   * while JavaScript is blocked in synchronous work (native/signal-watchdog.cc).
   * Call after installing the JS listeners.
   */
  armSignalWatchdog(graceMs: number): void;
  lockConstants: { LOCK_SH: number; LOCK_EX: number; LOCK_NB: number; LOCK_UN: number };
}

let cached: NativeBinding | undefined;

/** The addon; throws TSG_UNSUPPORTED with a remedy when it was not built. */
export function native(): NativeBinding {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  // src/native.ts and dist/native.js both sit one level below the package root.
  const root = join(here, '..');
  const candidates = [join(root, 'build/Release/tsgraph_native.node'), join(root, 'build/Debug/tsgraph_native.node')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new UnsupportedError('TSG_UNSUPPORTED', 'the native addon is not built; run `npm install` (or `npx node-gyp rebuild`)', {
      data: { looked: candidates },
    });
  }
  const require = createRequire(import.meta.url);
  cached = require(found) as NativeBinding;
  return cached;
}

/**
 * One fsconfig parameter value: null sets a flag; a string (at most 255
 * bytes: the kernel's limit, refused with ENAMETOOLONG past it) is
 * FSCONFIG_SET_STRING; `{ dir }` passes a directory by fd, so its path length
 * does not matter (`via` forces the fd or the /proc/self/fd/N fallback).
 */
export type FsParamValue = string | Buffer | null | { dir: string | Buffer; via?: 'fd' | 'procfd' };

/**
 * The mount, xattr and mknod part of the addon (see native/*.cc). Every
 * function checks its arguments: a string or Buffer holding a NUL is a
 * TypeError with code ERR_INVALID_ARG_VALUE, a number that is not an integer
 * in its C type's range (or has unknown flag bits) a RangeError with code
 * ERR_OUT_OF_RANGE. Failed syscalls throw errors shaped like Node's fs ones,
 * with a symbolic `code` (ENOTBLK…, "UNKNOWN" when nobody names the errno).
 */
export interface NativeFs {
  fsMount(fstype: string, params: Array<[string, FsParamValue]>, target: string | Buffer, attrFlags: number): void;
  hasNewMountApi(): boolean;
  mount(source: string | Buffer | null, target: string | Buffer, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string | Buffer, flags: number): void;
  /** Paths may be Buffers (names are bytes); every string or Buffer with a NUL is refused. */
  mknod(path: string | Buffer, mode: number, major: number, minor: number): void;
  lgetxattr(path: string | Buffer, name: string): Buffer | null;
  lsetxattr(path: string | Buffer, name: string, value: Buffer, flags: number): void;
  llistxattr(path: string | Buffer): string[];
  lremovexattr(path: string | Buffer, name: string): void;
  renameat2(from: string | Buffer, to: string | Buffer, flags: number): void;
  btrfsSubvolCreate(parentDir: string, name: string): void;
  btrfsSnapshot(source: string, destParentDir: string, name: string, readOnly: boolean): void;
  btrfsSetReadOnly(subvol: string, readOnly: boolean): void;
  btrfsIsReadOnly(subvol: string): boolean;
  btrfsSubvolDestroy(parentDir: string, name: string | Buffer): void;
  mountApiConstants: { MOUNT_ATTR_RDONLY: number; MOUNT_ATTR_NOSUID: number; MOUNT_ATTR_NODEV: number; MOUNT_ATTR_NOEXEC: number };
  mountConstants: {
    MS_RDONLY: number;
    MS_NOSUID: number;
    MS_NODEV: number;
    MS_REMOUNT: number;
    MS_BIND: number;
    MS_REC: number;
    MS_PRIVATE: number;
    MNT_DETACH: number;
    MNT_FORCE: number;
  };
  fsConstants: {
    S_IFCHR: number;
    S_IFBLK: number;
    S_IFIFO: number;
    XATTR_CREATE: number;
    XATTR_REPLACE: number;
    RENAME_NOREPLACE: number;
    RENAME_EXCHANGE: number;
    RENAME_WHITEOUT: number;
  };
}

/**
 * fd-relative reads of content a container controls (native/at-ops.cc); used
 * through src/util/safe-dir.ts. Names are single components (no '/', '.',
 * '..', NUL); O_NOFOLLOW and O_CLOEXEC are always added.
 */
export interface NativeAt {
  openatNoFollow(dirfd: number, name: string | Buffer, flags: number, mode?: number): number;
  /** The target of the symlink an O_PATH fd stands for, as bytes. */
  freadlink(fd: number): Buffer;
  /** xattrs of what the fd stands for (O_PATH fds too); null when absent. */
  fgetxattr(fd: number, name: string): Buffer | null;
  flistxattr(fd: number): string[];
  atConstants: { O_PATH: number; O_DIRECTORY: number; O_NONBLOCK: number; O_NOCTTY: number; O_RDONLY: number };
}

export function nativeAt(): NativeAt {
  return native() as unknown as NativeAt;
}

/** Typed view of the addon's filesystem and mount functions. */
export function nativeFs(): NativeFs {
  return native() as unknown as NativeFs;
}
