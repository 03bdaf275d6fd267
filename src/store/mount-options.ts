/**
 * The store's side of MountOptions: checked once before anything is made
 * (a bad label or idmap refuses the verb before an image is unpacked or a
 * name claimed), turned into the driver's GetOptions, and named by a key
 * that tells one live mount's options from another's.
 */
import * as fs from 'node:fs';
import type { GetOptions, GraphDriver } from '../drivers/driver.js';
import { UsageError } from '../errors.js';
import { checkMountOptions, type ContainerMountSpec, containerMountSpec, type MountOptions, mountOptionsKey } from '../mount/index.js';
import type { IdmapOption } from '../mount/mount-spec.js';
import { upperMaps } from '../mount/idmap.js';
import type { ContainerRecord } from './containers.js';

/** The mount kind a driver makes for a container (label and overlay options need overlay). */
export function driverMountKind(driver: GraphDriver): 'overlay' | 'bind' | 'aufs' {
  if (driver.name === 'overlay') return 'overlay';
  if (driver.name === 'aufs') return 'aufs';
  return 'bind';
}

/**
 * `userns` by the namespace it names (`user:[inode]`), not by the path or
 * fd number that named it: two fds of one namespace are the same idmap.
 */
function idmapIdentity(idmap: IdmapOption): IdmapOption | { ns: string } {
  if (!('userns' in idmap)) return idmap;
  try {
    if (typeof idmap.userns === 'number') return { ns: fs.readlinkSync(`/proc/self/fd/${idmap.userns}`) };
    return { ns: `user:[${fs.statSync(idmap.userns).ino}]` };
  } catch (err) {
    throw new UsageError('TSG_USAGE', `idmap userns ${String(idmap.userns)}: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks `options` for `driver`'s mounts and returns what driver.get() takes (readOnly stays the caller's). */
export function driverGetOptions(driver: GraphDriver, options: MountOptions): Pick<GetOptions, 'mount' | 'mountKey'> {
  const checked = checkMountOptions(options, driverMountKind(driver));
  const mount = { label: checked.label, overlayOptions: checked.overlayOptions, idmap: checked.idmap };
  const key = mountOptionsKey({ ...mount, idmap: undefined });
  const idKey = checked.idmap ? JSON.stringify(idmapIdentity(checked.idmap)) : '';
  return { mount, mountKey: key || idKey ? `${key}|${idKey}` : '' };
}

/** The runtime-facing spec of container `record` mounted with `options` (nothing is mounted). */
export function specOfContainer(driver: GraphDriver, record: ContainerRecord, options: MountOptions): ContainerMountSpec {
  const checked = checkMountOptions(options, driverMountKind(driver));
  const readOnly = checked.readOnly ?? record.readOnly;
  const spec = containerMountSpec(driver.mountSpec(record.id, { readOnly }), { ...checked, readOnly });
  if (spec.type === 'overlay' && checked.idmap && spec.layers.upper !== undefined) spec.upperIdmap = upperMaps(checked.idmap);
  return spec;
}
