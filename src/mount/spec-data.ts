/**
 * A driver's MountSpec plus MountOptions → the parameters to mount it: one
 * plan that src/mount's own mount() follows and that Store.mountSpec hands
 * a runtime as data (ContainerMountSpec), so the two cannot drift apart.
 */
import type { ContainerMountSpec, FsParam, MountOptions, MountSpec, OverlayMountSpec } from './mount-spec.js';
import { overlayParams } from './options.js';

/** One overlay parameter in mount order: a layer directory, a string value, or a flag. */
export type PlanEntry =
  | { key: 'lowerdir+' | 'upperdir' | 'workdir'; dir: string; role: 'lower' | 'upper' }
  | { key: string; value: string | null };

/** The name overlay mounts carry as their source (mountinfo shows it). */
export const OVERLAY_SOURCE = 'tsgraph';

/**
 * The overlay parameters in the order they are set: lowers topmost first,
 * upper, work, the driver's options, the label (`context`), the caller's
 * extra options (checked: options.ts).
 */
export function overlayPlan(spec: OverlayMountSpec, options: MountOptions = {}): PlanEntry[] {
  const plan: PlanEntry[] = [{ key: 'source', value: OVERLAY_SOURCE }];
  for (const lower of spec.lowers) plan.push({ key: 'lowerdir+', dir: lower, role: 'lower' });
  if (spec.upper !== undefined) {
    plan.push({ key: 'upperdir', dir: spec.upper, role: 'upper' });
    if (spec.work !== undefined) plan.push({ key: 'workdir', dir: spec.work, role: 'upper' });
  }
  for (const opt of spec.options) {
    const eq = opt.indexOf('=');
    plan.push(eq < 0 ? { key: opt, value: null } : { key: opt.slice(0, eq), value: opt.slice(eq + 1) });
  }
  if (options.label !== undefined) plan.push({ key: 'context', value: options.label });
  for (const [key, value] of overlayParams(options.overlayOptions)) plan.push({ key, value });
  return plan;
}

/** What every aufs mount sets before its branches (src/mount mountAufs). */
export const AUFS_BASE_OPTIONS = ['dio', 'xino=/dev/shm/aufs.xino'];

/** Classic mount(2) reads one page of options: 4095 bytes and the NUL. */
export const MAX_MOUNT_DATA = 4095;

/** Characters a classic overlay option string cannot carry in a path (separators, escapes, quotes). */
const UNSAFE_IN_DATA = /[,:\\"=\s\0]/;

/**
 * The classic option string of a plan, or undefined when it would pass
 * 4095 bytes or a path would need escaping. Lowers join into one
 * `lowerdir=` (topmost first, as `lowerdir+` order); a label goes in double
 * quotes (SELinux reads `context="…,…"` with its commas).
 */
export function classicData(plan: PlanEntry[]): string | undefined {
  const lowers: string[] = [];
  const rest: string[] = [];
  for (const e of plan) {
    if ('dir' in e) {
      if (UNSAFE_IN_DATA.test(e.dir)) return undefined;
      if (e.key === 'lowerdir+') lowers.push(e.dir);
      else rest.push(`${e.key}=${e.dir}`);
    } else if (e.key === 'source') {
      continue; // mount(2)'s own argument
    } else if (e.value === null) {
      rest.push(e.key);
    } else {
      rest.push(e.key === 'context' ? `${e.key}="${e.value}"` : `${e.key}=${e.value}`);
    }
  }
  const data = [...(lowers.length ? [`lowerdir=${lowers.join(':')}`] : []), ...rest].join(',');
  return Buffer.byteLength(data) <= MAX_MOUNT_DATA ? data : undefined;
}

/** The runtime-facing spec of `spec` mounted with `options` (see ContainerMountSpec). */
export function containerMountSpec(spec: MountSpec, options: MountOptions = {}): ContainerMountSpec {
  const readOnly = options.readOnly ?? false;
  switch (spec.type) {
    case 'overlay': {
      const plan = overlayPlan(spec, options);
      const params: FsParam[] = plan.map((e) => ('dir' in e ? [e.key, e.dir] : [e.key, e.value]));
      return {
        type: 'overlay',
        source: OVERLAY_SOURCE,
        options: params,
        data: classicData(plan),
        readOnly: readOnly || spec.upper === undefined,
        layers: { lowers: [...spec.lowers], upper: spec.upper, work: spec.work },
        idmap: options.idmap,
      };
    }
    case 'bind':
      return {
        type: 'bind',
        source: spec.source,
        options: [],
        data: undefined,
        readOnly,
        layers: { lowers: [], upper: spec.source, work: undefined },
        idmap: options.idmap,
      };
    case 'aufs': {
      const branch = spec.branches.map((b) => `${b.path}=${b.mode}`).join(':');
      const data = [...AUFS_BASE_OPTIONS, ...spec.options, `br:${branch}`].join(',');
      return {
        type: 'aufs',
        source: 'none',
        options: [],
        data: Buffer.byteLength(data) <= MAX_MOUNT_DATA ? data : undefined,
        readOnly,
        layers: {
          lowers: spec.branches.filter((b) => b.mode !== 'rw').map((b) => b.path),
          upper: spec.branches.find((b) => b.mode === 'rw')?.path,
          work: undefined,
        },
        idmap: undefined,
      };
    }
  }
}
