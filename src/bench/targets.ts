/**
 * What the copy-up suite runs on: overlay with tsgraph's own mount options
 * and with redirect_dir / metacopy turned on, vfs, and btrfs.
 *
 * The layer is made through the driver (create + applyDiff, as a pull does).
 * A container is a writable layer on it (create readWrite, as `mount` does);
 * vfs and btrfs mount it with get(). The overlay variants mount the
 * container's own mount spec with its options swapped: tsgraph's containers
 * always use redirect_dir=off,metacopy=off (its native differ reads plain
 * uppers), so the variants exist only here, mounted through src/mount.
 *
 * btrfs needs a btrfs filesystem: when the work dir is not on one, the
 * suite makes a loop file, formats and mounts it (mkfs.btrfs and mount(8),
 * as root), and takes it down again, whatever happened.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { GraphDriver } from '../drivers/driver.js';
import { OVERLAY_OPTIONS } from '../drivers/overlay/overlay.js';
import { backingFs } from '../drivers/probe.js';
import { createDriver } from '../drivers/registry.js';
import { UnsupportedError, UsageError } from '../errors.js';
import { mount, readMountInfo, unmount } from '../mount/index.js';
import type { OverlayMountSpec } from '../mount/mount-spec.js';

export type TargetDriver = 'overlay' | 'vfs' | 'btrfs';

export interface TargetSpec {
  /** `overlay`, `overlay+redirect`, `overlay+metacopy`, `vfs` or `btrfs`. */
  name: string;
  driver: TargetDriver;
  /** Overlay mount options (overlay targets only). */
  mountOptions?: string[] | undefined;
}

export const TARGET_NAMES = ['overlay', 'overlay+redirect', 'overlay+metacopy', 'vfs', 'btrfs'] as const;

/** tsgraph's overlay options with some keys replaced (metacopy=on needs redirect_dir=on: the kernel refuses it with redirect_dir=off). */
function overlayOptions(set: Record<string, string>): string[] {
  const out = OVERLAY_OPTIONS.map((o) => {
    const key = o.split('=')[0]!;
    return key in set ? `${key}=${set[key]}` : o;
  });
  for (const [k, v] of Object.entries(set)) if (!out.some((o) => o.startsWith(`${k}=`))) out.push(`${k}=${v}`);
  return out;
}

export function parseTarget(name: string): TargetSpec {
  switch (name) {
    case 'overlay':
      return { name, driver: 'overlay', mountOptions: [...OVERLAY_OPTIONS] };
    case 'overlay+redirect':
      return { name, driver: 'overlay', mountOptions: overlayOptions({ redirect_dir: 'on' }) };
    case 'overlay+metacopy':
    case 'overlay+metacopy+redirect':
      return { name: 'overlay+metacopy', driver: 'overlay', mountOptions: overlayOptions({ redirect_dir: 'on', metacopy: 'on' }) };
    case 'vfs':
    case 'btrfs':
      return { name, driver: name };
    default:
      throw new UsageError('TSG_USAGE', `unknown copy-up target ${JSON.stringify(name)} (known: ${TARGET_NAMES.join(', ')})`, { data: { target: name } });
  }
}

/** A driver home with the bench's image layer in it. */
export interface LayerHost {
  driver: GraphDriver;
  /** Filesystem type the layers live on. */
  fsType: string;
  /** Takes the home down (and a loop btrfs with it). */
  close(): Promise<void>;
}

/** A writable container layer on the image layer, mounted. */
export interface BenchContainer {
  /** Where the operations run: the mounted root. */
  root: string;
  /** The container's own layer dir (overlay: the upper; vfs/btrfs: the full tree), where bytes are counted. */
  writable: string;
  close(): Promise<void>;
}

/** Unmounts (lazily, deepest first) anything still mounted below `dir`: the last line of cleanup. */
export function unmountBelow(dir: string): void {
  const below = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of below) unmount(p, { detach: true });
}

/** A loop-file btrfs of `bytes` under `work`, mounted on `<work>/btrfs-mnt`. */
function loopBtrfs(work: string, bytes: number): { dir: string; close(): void } {
  if (process.getuid?.() !== 0) throw new UnsupportedError('TSG_UNSUPPORTED', 'a loop btrfs needs root (or run with --dir on a btrfs filesystem)');
  const image = join(work, 'btrfs.img');
  const dir = join(work, 'btrfs-mnt');
  fs.mkdirSync(dir);
  const close = () => {
    unmountBelow(dir);
    unmount(dir);
    // mount -o loop sets autoclear; detach whatever is still attached to the file all the same.
    try {
      const lines = execFileSync('losetup', ['-j', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      for (const line of lines.split('\n').filter(Boolean)) execFileSync('losetup', ['-d', line.split(':')[0]!], { stdio: 'ignore' });
    } catch {
      /* no losetup: nothing we could detach */
    }
    fs.rmSync(image, { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    fs.closeSync(fs.openSync(image, 'wx', 0o600));
    fs.truncateSync(image, bytes);
    execFileSync('mkfs.btrfs', ['-q', '-f', image], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', image, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    close();
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    throw new UnsupportedError('TSG_UNSUPPORTED', `cannot make a loop btrfs: ${e.code === 'ENOENT' ? 'mkfs.btrfs / mount not installed' : (e.stderr?.toString().trim() || e.message)}`, { cause: err });
  }
  return { dir, close };
}

/**
 * Makes `driver`'s home under `work` and the image layer `base` in it from
 * `tar()`. `layerBytes` sizes a loop btrfs when one is needed.
 */
export async function openLayerHost(
  driverName: TargetDriver,
  work: string,
  layerBytes: number,
  tar: () => NodeJS.ReadableStream,
  signal?: AbortSignal,
): Promise<LayerHost & { layerMs: number }> {
  let loop: { dir: string; close(): void } | undefined;
  let base = work;
  if (driverName === 'btrfs' && backingFs(work) !== 'btrfs') {
    // Room for the layer, one container's copies and btrfs's own metadata (DUP): the file is sparse.
    loop = loopBtrfs(work, Math.max(1 << 30, Math.ceil(layerBytes * 2.5) + (512 << 20)));
    base = loop.dir;
  }
  const home = join(base, `home-${driverName}`);
  let driver: GraphDriver | undefined;
  const close = async () => {
    try {
      unmountBelow(home);
      // Through the driver: btrfs's image layer is a read-only subvolume that a plain rm cannot delete.
      if (driver?.exists('base')) await driver.remove('base');
    } finally {
      if (loop) loop.close();
      else fs.rmSync(home, { recursive: true, force: true });
    }
  };
  try {
    driver = createDriver(driverName, home);
    const t0 = process.hrtime.bigint();
    await driver.create('base', undefined);
    await driver.applyDiff('base', undefined, tar() as never, { signal });
    const layerMs = Number(process.hrtime.bigint() - t0) / 1e6;
    return { driver, fsType: backingFs(join(home, '.')), layerMs, close };
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
}

/** A fresh container `id` on the host's `base` layer, mounted as `target` says. */
export async function openContainer(host: LayerHost, target: TargetSpec, id: string, mountDir: string): Promise<BenchContainer> {
  const { driver } = host;
  await driver.create(id, 'base', { readWrite: true });
  const writable = driver.layerPaths(id).own;
  try {
    if (target.driver === 'overlay') {
      const spec = { ...(driver.mountSpec(id) as OverlayMountSpec), options: target.mountOptions ?? [...OVERLAY_OPTIONS] };
      fs.mkdirSync(mountDir, { recursive: true, mode: 0o700 });
      mount(spec, mountDir);
      return {
        root: mountDir,
        writable,
        close: async () => {
          unmount(mountDir);
          fs.rmdirSync(mountDir);
          await driver.remove(id);
        },
      };
    }
    const root = await driver.get(id);
    return {
      root,
      writable,
      close: async () => {
        await driver.put(id, { all: true });
        await driver.remove(id);
      },
    };
  } catch (err) {
    await driver.remove(id).catch(() => {});
    throw err;
  }
}
