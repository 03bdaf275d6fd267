/**
 * `tsgraph doctor`: what this machine and root offer the drivers, each as a
 * probe with pass/fail, what was found, and a remedy when it fails. Probes
 * work in scratch dirs under the root and leave nothing behind; the store
 * itself is not opened (so no driver gets recorded).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { hasNewMountApi, mount, tryKernelOverlayLowers, unmount } from '../mount/index.js';
import { AUFS_REMEDY } from './aufs/aufs.js';
import { OVERLAY_OPTIONS, USERXATTR_OVERLAY_OPTIONS, probeOverlayMount } from './overlay/overlay.js';
import { inInitialUserNs } from '../rootless/userns.js';
import { backingFs, kernelHas, layerLikeDirs, probeDType, probeIn, probeReflink, probeUserxattrNeeded, probeWhiteoutMknod } from './probe.js';

export interface DoctorProbe {
  name: string;
  ok: boolean;
  detail: string;
  remedy?: string | undefined;
}

function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = release().split('.').map((x) => parseInt(x, 10));
  return (a ?? 0) > major || ((a ?? 0) === major && (b ?? 0) >= minor);
}

function overlayParam(name: string): string {
  try {
    return fs.readFileSync(`/sys/module/overlay/parameters/${name}`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/**
 * Mounts 500 and then 501 empty lowers to find the kernel's limit, with
 * paths as long as the real layer dirs under this root (see layerLikeDirs).
 */
function maxLowers(root: string): DoctorProbe {
  const p = probeIn(root, 'max overlay lowers', (dir) => {
    const lowers = layerLikeDirs(dir, 501, 'diff');
    const [m] = layerLikeDirs(join(dir, 'c'), 1, 'merged');
    mount({ type: 'overlay', lowers: lowers.slice(0, 500), options: [] }, m!, { readOnly: true });
    unmount(m!);
    // Past tsgraph's own cap, ask the kernel directly what it allows.
    const refusal = tryKernelOverlayLowers(lowers, m!);
    return refusal ? `500 (501 refused by the kernel: ${refusal})` : '500 mount; the kernel also takes 501, tsgraph still stops at 500';
  });
  return { ...p, remedy: p.ok ? undefined : 'overlay mounts with many lowers fail here; use fewer layers or another driver' };
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function runDoctor(root: string): DoctorProbe[] {
  fs.mkdirSync(root, { recursive: true });
  const inUserNs = !inInitialUserNs();
  const out: DoctorProbe[] = [];
  const add = (p: DoctorProbe) => out.push(p);
  const remedyIf = (p: { ok: boolean; name: string; detail: string }, remedy: string): DoctorProbe => ({ ...p, remedy: p.ok ? undefined : remedy });

  add({
    name: 'kernel',
    ok: kernelAtLeast(5, 2),
    // 5.2 is what tsgraph needs at all (the new mount API); overlay's `lowerdir+` (layers passed
    // one by one, any number of bytes) needs 6.8, so below that the overlay probe fails and vfs
    // or btrfs is picked.
    detail: `Linux ${release()}${kernelAtLeast(6, 8) ? '' : ' (the overlay driver needs ≥ 6.8 for lowerdir+; below it vfs or btrfs is used)'}`,
    remedy: kernelAtLeast(5, 2) ? undefined : 'tsgraph needs Linux ≥ 5.2 for the new mount API',
  });
  const overlay = kernelHas('overlay');
  add({ name: 'overlay', ok: overlay, detail: overlay ? 'in /proc/filesystems' : 'not in /proc/filesystems', remedy: overlay ? undefined : 'modprobe overlay' });
  const api = hasNewMountApi();
  add({ name: 'new mount API', ok: api, detail: api ? 'fsopen/fsconfig/fsmount/move_mount' : 'fsopen is missing', remedy: api ? undefined : 'upgrade to Linux ≥ 5.2' });
  if (overlay && api) {
    // In a user namespace (rootless, docs/rootless.md) a store's overlay mounts with userxattr.
    add(remedyIf(probeOverlayMount(root, inUserNs ? USERXATTR_OVERLAY_OPTIONS : OVERLAY_OPTIONS), 'overlay mounts fail here; tsgraph picks btrfs or vfs for this root'));
    add(maxLowers(root));
  }
  const fsType = backingFs(root);
  add({ name: 'backing filesystem', ok: fsType !== 'overlay' && fsType !== 'aufs', detail: `${root} is on ${fsType}`, remedy: fsType === 'overlay' ? 'put the root on a real filesystem (overlay on overlay fails)' : undefined });
  add(remedyIf(probeDType(root), 'reformat with d_type (xfs: ftype=1)'));
  add(remedyIf(probeWhiteoutMknod(root), 'mknod of char 0/0 is denied: run as root (or in a user namespace that allows it)'));
  if (inUserNs) add({ name: 'userxattr needed', ok: true, detail: 'yes (a user namespace): overlay keeps its metadata in user.overlay.*, mounted with userxattr' });
  else add(remedyIf(probeUserxattrNeeded(root), 'as a non-root user tsgraph runs in a user namespace and mounts with userxattr (docs/rootless.md)'));
  add({
    name: 'metacopy / redirect_dir / index',
    ok: true,
    detail: `kernel defaults metacopy=${overlayParam('metacopy')} redirect_dir=${overlayParam('redirect_dir')} index=${overlayParam('index')}; tsgraph mounts with ${OVERLAY_OPTIONS.join(',')} (native diff stays exact)`,
  });
  const reflink = probeReflink(root);
  add({
    ...reflink,
    detail: reflink.ok ? reflink.detail : `no copy-on-write clones on ${fsType}`,
    remedy: reflink.ok ? undefined : 'vfs copies are full copies here; a btrfs or xfs root makes them reflinks',
  });
  const btrfs = kernelHas('btrfs');
  add({
    name: 'btrfs',
    ok: btrfs,
    detail: btrfs ? `in the kernel; root is ${fsType === 'btrfs' ? '' : 'not '}on btrfs${fsType === 'btrfs' ? ' (btrfs driver usable)' : ''}` : 'not in /proc/filesystems',
    remedy: btrfs ? undefined : 'modprobe btrfs',
  });
  const aufs = kernelHas('aufs');
  add({ name: 'aufs', ok: aufs, detail: aufs ? 'in /proc/filesystems' : 'not in this kernel', remedy: aufs ? undefined : AUFS_REMEDY });
  const runc = which('runc');
  let runcVersion = '';
  if (runc) {
    try {
      runcVersion = execFileSync(runc, ['--version'], { encoding: 'utf8', timeout: 5000 }).split('\n')[0] ?? ''; // every wait bounded: a hung runc must not hang doctor
    } catch {
      /* found but not runnable */
    }
  }
  add({ name: 'runc', ok: !!runc, detail: runc ? `${runc} (${runcVersion})` : 'not on PATH', remedy: runc ? undefined : 'apt-get install runc (to run what tsgraph mounts)' });
  return out;
}
