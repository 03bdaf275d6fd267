/**
 * overlay driver. Layout under `<root>/overlay/layers/<id>/`:
 *   diff/    the layer's own files (whiteouts as char 0/0, opaque dirs by xattr)
 *   work/    overlay's work dir (container layers only)
 *   merged/  mount point
 *   meta.json
 * A container layer mounts as upper=diff, work=work, lowers = the parents'
 * diffs (topmost first) through the new mount API, so the 4095-byte option
 * limit of mount(2) never applies; the kernel's own limit is 500 lowers.
 * Options: index=off (a layer may be mounted by many containers),
 * redirect_dir=off and metacopy=off (uppers stay a plain diff that the
 * native differ can read).
 *
 * Rootless: a home made inside a user namespace (a non-root user's store,
 * docs/rootless.md) is marked by a `userxattr` file and mounts with
 * `userxattr`: overlay then keeps opaque dirs in user.overlay.* (trusted.*
 * needs CAP_SYS_ADMIN in the initial namespace), and wants
 * redirect_dir=nofollow (the kernel refuses userxattr with `off`, which
 * means "follow" there). Whiteouts stay char 0/0: anyone may make those.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { UnsupportedError } from '../../errors.js';
import { type ApplyResult, applyTar } from '../../layer/apply.js';
import { type OverlayXattrPrefix, TRUSTED_OVERLAY, USER_OVERLAY, overlayFormat, userxattrOverlayFormat } from '../../layer/whiteout.js';
import { inInitialUserNs } from '../../rootless/userns.js';
import { hasNewMountApi, isMountPoint, MAX_OVERLAY_LOWERS, type MountSpec, mount, unmount } from '../../mount/index.js';
import type { ApplyDiffOptions, CreateOptions, LayerPaths, PutOptions, DriverCapabilities, DriverStatus, GetOptions, GraphDriver, Probe } from '../driver.js';
import { LayerDirs, type LayerMeta } from '../layer-dirs.js';
import { lowerDirStats } from './lower-dir.js';
import { crashPoint } from '../../util/crash-point.js';
import { backingFs, cleanupProbes, kernelHas, layerLikeDirs, probeDType, probeIn, probeUserxattrNeeded, probeWhiteoutMknod } from '../probe.js';
import { setXattr } from '../../layer/xattr.js';

export const OVERLAY_OPTIONS = ['index=off', 'redirect_dir=off', 'metacopy=off'];
/** For a rootless store (see the file comment). */
export const USERXATTR_OVERLAY_OPTIONS = ['index=off', 'redirect_dir=nofollow', 'metacopy=off', 'userxattr'];
/** Marks a driver home whose layers keep overlay's xattrs in user.overlay.* */
const USERXATTR_MARKER = 'userxattr';

/**
 * Whether the overlay home keeps its xattrs in user.overlay.*: once marked,
 * always; a home with no layers yet is marked when opened inside a user
 * namespace (where trusted.* cannot be written). A home with layers is never
 * switched: their opaque dirs are in the namespace they were written with.
 */
function userxattrHome(home: string, layersDir: string): boolean {
  const marker = join(home, USERXATTR_MARKER);
  if (fs.existsSync(marker)) return true;
  if (inInitialUserNs()) return false;
  if (fs.readdirSync(layersDir).some((n) => !n.startsWith('.'))) return false;
  try {
    fs.writeFileSync(marker, 'user.overlay\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return true;
}

/**
 * Mounts a container-style overlay (two lowers, upper, work) in a probe dir,
 * with the paths a real container mount has (a 64-hex id per layer): a root
 * too long for the mount fails here, and then overlay is not picked.
 */
export function probeOverlayMount(home: string, options: string[] = OVERLAY_OPTIONS): Probe {
  return probeIn(home, 'overlay mount', (dir) => {
    const [l1, l2] = layerLikeDirs(dir, 2, 'diff');
    const [upper, work, merged] = ['diff', 'work', 'merged'].map((leaf) => layerLikeDirs(join(dir, 'c'), 1, leaf)[0]!);
    mount({ type: 'overlay', lowers: [l1!, l2!], upper, work, options }, merged!);
    crashPoint('probe:overlay-mounted'); // tests: a kill here leaves a mounted probe dir behind
    unmount(merged!);
    return `mounts with ${options.join(',')} (layer paths ${Buffer.byteLength(upper!)} bytes)`;
  });
}

/** A rootless store's overlay needs user.* xattrs on the backing filesystem. */
function probeUserxattr(home: string): Probe {
  return probeIn(home, 'userxattr', (dir) => {
    setXattr(dir, 'user.tsgraph-probe', 'y');
    return 'rootless store: overlay metadata in user.overlay.* (mounted with userxattr)';
  });
}

export class OverlayDriver implements GraphDriver {
  readonly name = 'overlay';
  readonly capabilities: DriverCapabilities = { layout: 'diff', whiteouts: 'overlay', maxDepth: MAX_OVERLAY_LOWERS };
  readonly dirs: LayerDirs;
  /** Where the layers keep overlay's xattrs: user.overlay.* in a rootless store. */
  readonly xattrPrefix: OverlayXattrPrefix;
  /** Overlay mount options (with `userxattr` in a rootless store). */
  readonly options: string[];

  constructor(readonly home: string) {
    this.dirs = new LayerDirs(home);
    fs.mkdirSync(join(home, 'empty'), { recursive: true, mode: 0o700 });
    const user = userxattrHome(this.dirs.home, this.dirs.layersDir);
    this.xattrPrefix = user ? USER_OVERLAY : TRUSTED_OVERLAY;
    this.options = user ? USERXATTR_OVERLAY_OPTIONS : OVERLAY_OPTIONS;
  }

  diffDir(id: string): string {
    return join(this.dirs.dir(id), 'diff');
  }

  /** diffDir() for ids lowerIds() already checked: a concatenation, not a path.join (500 of them per mount). */
  #lowerDiffs(ids: string[]): string[] {
    const base = `${this.dirs.layersDir}/`;
    return ids.map((l) => `${base}${l}/diff`);
  }

  async create(id: string, parent: string | undefined, options: CreateOptions = {}): Promise<void> {
    const readWrite = options.readWrite ?? false;
    const depth = parent === undefined ? 1 : this.dirs.meta(parent).depth + 1;
    // A read-only layer mounts all of its chain as lowers; a container layer is the upper on top of them.
    const lowers = readWrite ? depth - 1 : depth;
    if (lowers > MAX_OVERLAY_LOWERS) {
      throw new UnsupportedError(
        'TSG_UNSUPPORTED',
        `overlay supports at most ${MAX_OVERLAY_LOWERS} layers below a mount; layer ${id} would need ${lowers}`,
        { data: { id, lowers, limit: MAX_OVERLAY_LOWERS } },
      );
    }
    // build(): the driver lock only for the rename, so `images` never waits on a creation.
    await this.dirs.build(id, parent, readWrite, (staging) => {
      fs.mkdirSync(join(staging, 'diff'), { mode: 0o755 });
      fs.mkdirSync(join(staging, 'merged'), { mode: 0o700 });
      if (readWrite) fs.mkdirSync(join(staging, 'work'), { mode: 0o700 });
    });
  }

  async applyDiff(id: string, _parent: string | undefined, tar: Readable, options: ApplyDiffOptions = {}): Promise<ApplyResult> {
    // The parents' diff dirs, topmost first: implicit parent dirs keep the attributes they have there.
    const lowers = this.dirs.lowerIds(id).map((l) => this.diffDir(l));
    return applyTar(this.diffDir(id), tar, {
      format: this.xattrPrefix === USER_OVERLAY ? userxattrOverlayFormat : overlayFormat,
      signal: options.signal,
      pax: options.pax,
      lowerDir: options.lowerDir ?? ((rel) => lowerDirStats(lowers, rel, this.xattrPrefix)),
      explicitDir: options.explicitDir,
    });
  }

  mountSpec(id: string, _options: GetOptions = {}, meta: LayerMeta = this.dirs.meta(id)): MountSpec {
    // One read of the layer's `lower` file, not one meta per layer below it.
    const below = this.dirs.lowerIds(id, meta);
    if (meta.readWrite) {
      const lowers = this.#lowerDiffs(below);
      return {
        type: 'overlay',
        // Overlay needs a lower even for a container on scratch.
        lowers: lowers.length ? lowers : [join(this.home, 'empty')],
        upper: this.diffDir(id),
        work: join(this.dirs.dir(id), 'work'),
        options: this.options,
      };
    }
    // The kernel wants two lowers for an overlay without upper; one is a bind mount.
    if (below.length === 0) return { type: 'bind', source: this.diffDir(id) };
    return { type: 'overlay', lowers: [this.diffDir(id), ...this.#lowerDiffs(below)], options: this.options };
  }

  async get(id: string, options: GetOptions = {}): Promise<string> {
    const target = join(this.dirs.dir(id), 'merged');
    await this.dirs.acquire(id, target, (meta) => mount(this.mountSpec(id, options, meta), target, { ...options.mount, readOnly: options.readOnly || !meta.readWrite }), options.mountKey);
    return target;
  }

  async put(id: string, options: PutOptions = {}): Promise<void> {
    await this.dirs.release(id, join(this.dirs.dir(id), 'merged'), options);
  }

  exists(id: string): boolean {
    return this.dirs.exists(id);
  }

  layerPaths(id: string): LayerPaths {
    return { own: this.diffDir(id), parents: this.dirs.lowerIds(id).map((l) => this.diffDir(l)) };
  }

  async remove(id: string): Promise<void> {
    // A statx first: an umount2 of what is not mounted is a thrown EINVAL, the common case here.
    await this.dirs.removeLayer(id, join(this.dirs.dir(id), 'merged'), (dir) => {
      if (isMountPoint(join(dir, 'merged'))) unmount(join(dir, 'merged'), { detach: true });
    });
  }

  async status(): Promise<DriverStatus> {
    const probes = [
      { name: 'overlay in kernel', ok: kernelHas('overlay'), detail: kernelHas('overlay') ? 'listed in /proc/filesystems' : 'modprobe overlay' },
      { name: 'new mount API', ok: hasNewMountApi(), detail: 'fsopen/fsconfig/fsmount/move_mount' },
      probeDType(this.home),
      probeWhiteoutMknod(this.home),
      this.xattrPrefix === USER_OVERLAY ? probeUserxattr(this.home) : probeUserxattrNeeded(this.home),
      {
        name: 'native diff',
        ok: true,
        detail: 'on: mounts use redirect_dir=off,metacopy=off so uppers are plain diffs; an upper carrying redirect/metacopy xattrs falls back to the naive diff',
      },
      probeOverlayMount(this.home, this.options),
    ];
    return { driver: this.name, home: this.home, backingFs: backingFs(this.home), probes };
  }

  async cleanup(): Promise<void> {
    // statx first: umount2 of a plain dir is EPERM, not EINVAL, for a non-root caller (a leftover would stay forever).
    await this.dirs.cleanup((merged) => {
      if (isMountPoint(merged)) unmount(merged, { detach: true });
    });
    cleanupProbes(this.home); // a status() probe killed while its overlay was mounted
  }
}
