/**
 * Loads the native addons. This file only types and loads them; mounting goes
 * through src/mount, locking through src/store/lock.ts. Keep the typed
 * surface in step with native/*.cc.
 *
 * Where the addon comes from (docs/packaging.md): node-gyp-build's lookup, the
 * same one its install script ran to decide that nothing needs compiling —
 * build/Release or build/Debug first (a local node-gyp build: a developer's,
 * or the install's fallback when no prebuild matched), then
 * prebuilds/<platform>-<arch>/ (shipped in the npm package, one N-API build
 * for every Node), picked by its tags (libc, ...). `TSGRAPH_PREBUILD=dir`
 * points the lookup at another package root.
 *
 * Both loaders are lazy and load nothing at import: CLI start stays light
 * (test/cli/start.test.ts).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import type { Transform } from 'node:stream';
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

/** src/native.ts and dist/native.js both sit one level below the package root. */
const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

let cached: NativeBinding | undefined;

/**
 * The addon's path under package root `root`: node-gyp-build's answer. Its
 * two usual answers are checked first without loading it (that costs ~1.5 ms
 * of every CLI start): build/Release/tsgraph_native.node (its first stop,
 * where node-gyp puts our only target), and, with no build/ at all, our own
 * prebuild's exact name in prebuilds/<platform>-<arch>/ (the one file
 * scripts/prebuild.mjs puts there, libc told as node-gyp-build tells it).
 * Any variable that changes its rules, or anything else, asks it.
 */
export function nativeAddonPath(root = PACKAGE_ROOT): string {
  const env = process.env;
  if (!env.TSGRAPH_PREBUILD && !env.PREBUILDS_ONLY && !env.npm_config_arch && !env.npm_config_platform && !env.LIBC) {
    const release = join(root, 'build', 'Release', 'tsgraph_native.node');
    if (existsSync(release)) return release;
    if (!existsSync(join(root, 'build'))) {
      const libc = process.platform === 'linux' && existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
      const prebuild = join(root, 'prebuilds', `${process.platform}-${process.arch}`, `tsgraph.${libc}.node`);
      if (existsSync(prebuild)) return prebuild;
    }
  }
  return (require('node-gyp-build') as { path(dir: string): string }).path(root);
}

/** The addon; throws TSG_UNSUPPORTED with a remedy when there is none for this machine. */
export function native(): NativeBinding {
  if (cached) return cached;
  let found: string;
  try {
    found = nativeAddonPath();
  } catch (err) {
    // node-gyp-build says which platform/arch/libc it looked for: keep that in the message.
    const why = (err as Error).message.split('\n')[0]!.replace(/^No native build was found for /, '');
    throw new UnsupportedError(
      'TSG_UNSUPPORTED',
      `the native addon is neither prebuilt for this machine (${why}) nor built: reinstall tsgraph where node-gyp can compile it (a C++ compiler, make, python3), or run \`npx node-gyp rebuild\` in its directory`,
      { data: { looked: [join(PACKAGE_ROOT, 'build/Release'), join(PACKAGE_ROOT, 'build/Debug'), join(PACKAGE_ROOT, 'prebuilds')] } },
    );
  }
  try {
    cached = require(found) as NativeBinding;
  } catch (err) {
    // A prebuild this machine cannot load (an older glibc, say) when install scripts did not run to find that out and build.
    throw new UnsupportedError(
      'TSG_UNSUPPORTED',
      `the native addon ${found} does not load here (${(err as Error).message.split('\n')[0]}): reinstall tsgraph with install scripts allowed and npm_config_build_from_source=true where node-gyp can compile it`,
      { cause: err, data: { path: found } },
    );
  }
  return cached;
}

/** What tsgraph uses of zstd-napi's stream API (its dist/index.js). */
export interface ZstdNapi {
  CompressStream: new (params?: { compressionLevel?: number; nbWorkers?: number }) => Transform;
  DecompressStream: new () => Transform;
}

/** What tsgraph uses of zstd-napi's raw binding (ZSTD_DCtx, streaming). */
export interface ZstdBinding {
  DCtx: new () => {
    /** [ret (0 at a frame's end), bytes written to dst, bytes read from src] */
    decompressStream(dst: Uint8Array, src: Uint8Array): [number, number, number];
  };
}

let zstdDir: string | undefined;

/**
 * Where zstd-napi may load from, in order: only where npm puts our own
 * dependency — inside our package, or beside it when we are installed in a
 * node_modules (hoisted) — then our prebuilt copy. Not require.resolve: with
 * zstd-napi missing it walks every parent node_modules, NODE_PATH and
 * ~/.node_modules, so a root tsgraph would load native code from a directory
 * someone else may be able to write to.
 */
export function zstdNapiCandidates(packageRoot: string): string[] {
  const dirs = [join(packageRoot, 'node_modules', 'zstd-napi')];
  if (basename(dirname(packageRoot)) === 'node_modules') dirs.push(join(dirname(packageRoot), 'zstd-napi'));
  dirs.push(join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'zstd-napi'));
  return dirs;
}

/**
 * zstd-napi's directory, its binding loaded once: the installed optional
 * dependency (built for this machine by its own install), else the copy
 * `npm run prebuild` ships in prebuilds/<platform>-<arch>/zstd-napi/ (its
 * install needs a download or a compiler; without both npm drops it and the
 * copy serves). Neither: TSG_UNSUPPORTED, which only zstd layers meet.
 */
function zstdNapiDir(): string {
  if (zstdDir) return zstdDir;
  const tried: string[] = [];
  for (const dir of zstdNapiCandidates(PACKAGE_ROOT)) {
    try {
      require(join(dir, 'binding.js'));
      zstdDir = dir;
      return dir;
    } catch (err) {
      tried.push((err as Error).message.split('\n')[0]!);
    }
  }
  throw new UnsupportedError(
    'TSG_UNSUPPORTED',
    `zstd layers need zstd-napi's native binding, which is neither installed nor prebuilt for ${process.platform}-${process.arch} (its install needs a C++ compiler or its download): gzip and uncompressed layers work; \`npm install zstd-napi\` where it can build adds zstd`,
    { data: { tried } },
  );
}

/** zstd-napi's stream API; throws TSG_UNSUPPORTED when no binding loads (see zstdNapiDir). */
export function zstdNapi(): ZstdNapi {
  return require(zstdNapiDir()) as ZstdNapi;
}

/** zstd-napi's raw binding; throws TSG_UNSUPPORTED when none loads. */
export function zstdBinding(): ZstdBinding {
  return require(join(zstdNapiDir(), 'binding.js')) as ZstdBinding;
}

/**
 * One fsconfig parameter value: null sets a flag; a string (at most 255
 * bytes: the kernel's limit, refused with ENAMETOOLONG past it) is
 * FSCONFIG_SET_STRING; `{ dir }` passes a directory by fd, so its path length
 * does not matter (`via` forces the fd or the /proc/self/fd/N fallback).
 */
export type FsParamValue = string | Buffer | null | { dir: string | Buffer; via?: 'fd' | 'procfd'; at?: number };

/** fsMount's idmapped bases (native/mount-api.cc): `{dir, at}` params are relative to base `at`, seen through an idmapped clone of it. */
export interface FsIdmapBase {
  usernsFd: number;
  base: string;
}

/**
 * The mount, xattr and mknod part of the addon (see native/*.cc). Every
 * function checks its arguments: a string or Buffer holding a NUL is a
 * TypeError with code ERR_INVALID_ARG_VALUE, a number that is not an integer
 * in its C type's range (or has unknown flag bits) a RangeError with code
 * ERR_OUT_OF_RANGE. Failed syscalls throw errors shaped like Node's fs ones,
 * with a symbolic `code` (ENOTBLK…, "UNKNOWN" when nobody names the errno).
 */
export interface NativeFs {
  fsMount(fstype: string, params: Array<[string, FsParamValue]>, target: string | Buffer, attrFlags: number, idmap?: FsIdmapBase[]): void;
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

/**
 * Batched layer extraction (native/apply-batch.cc), used through
 * src/layer/apply-batch.ts. `ops` holds FIELDS numbers per op; paths and
 * symlink targets are byte ranges of `names`, file contents ranges of `data`.
 * Every field is re-checked natively (bad input throws synchronously with
 * ERR_INVALID_ARG_TYPE / _VALUE / ERR_OUT_OF_RANGE); the ops run in order on
 * a pool thread, resolved beneath `rootFd` without following any symlink.
 * Resolves to the number of ops done; rejects with an errno-shaped Error plus
 * `opIndex` (the op that failed) and `completed`.
 */
export interface NativeApplyBatch {
  applyBatch(rootFd: number, ops: Float64Array, names: Buffer, data: Buffer): Promise<number>;
  /** False on kernels without openat2 (< 5.6). */
  applyBatchSupported(): boolean;
  applyBatchConstants: {
    KIND: number;
    PATH_OFF: number;
    PATH_LEN: number;
    LINK_OFF: number;
    LINK_LEN: number;
    DATA_OFF: number;
    DATA_LEN: number;
    CREATE_MODE: number;
    FLAGS: number;
    MODE: number;
    UID: number;
    GID: number;
    SEC: number;
    NSEC: number;
    FIELDS: number;
    FILE: number;
    MKDIR: number;
    DIR_META: number;
    SYMLINK: number;
    TIMES: number;
    OWNER: number;
    SET_MODE: number;
    SET_TIMES: number;
    MAX_OPS: number;
  };
}

export function nativeApplyBatch(): NativeApplyBatch {
  return native() as unknown as NativeApplyBatch;
}

export function nativeAt(): NativeAt {
  return native() as unknown as NativeAt;
}

/** Typed view of the addon's filesystem and mount functions. */
export function nativeFs(): NativeFs {
  return native() as unknown as NativeFs;
}
