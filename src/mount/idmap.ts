/**
 * User namespaces for idmapped mounts (native/idmap.cc does the syscalls).
 *
 * A bind mount (vfs, btrfs) is idmapped with the caller's namespace as is.
 * Overlay cannot be idmapped itself (6.18 refuses MOUNT_ATTR_IDMAP on it,
 * measured), so its layers are: the lowers through one idmapped clone of the
 * driver's home, the upper and work dir through one of the container's layer
 * dir. The upper needs one more mapping: overlay works in its upper with the
 * credentials of whoever mounted it (host root, uid 0: the work dir, copy-up
 * temp files, whiteouts) and an idmapped mount refuses to create files for an
 * id its namespace does not map (EOVERFLOW; overlay then mounts read-only).
 * So the upper's namespace is the caller's maps plus one line mapping a spare
 * on-disk id, SPARE_ID (4294967294 unless the maps use it), to host 0: what
 * overlay itself makes is owned by that id on disk (hidden from the
 * container: it does not map it), what the container makes has the ids the
 * container sees. Measured (6.18): a container's root writes files owned by
 * 0 on disk, chown 1000 stores 1000.
 */
import { closeSync, readlinkSync } from 'node:fs';
import { UnsupportedError, UsageError, TsgraphError } from '../errors.js';
import { nativeFs } from '../native.js';
import type { IdMapping, IdmapOption } from './mount-spec.js';

/** The part of the addon this file uses (native/idmap.cc). */
interface NativeIdmap {
  usernsOpen(path: string): number;
  usernsCheck(fd: number): void;
  usernsCreate(uidMap: number[], gidMap: number[]): number;
  usernsMaps(fd: number): { uidMap: number[]; gidMap: number[] };
  idmappedBind(source: string, target: string, usernsFd: number, attrFlags: number, recursive: boolean): void;
  idmapProbe(path: string, usernsFd: number): void;
}

export function nativeIdmap(): NativeIdmap {
  return nativeFs() as unknown as NativeIdmap;
}

/** The highest on-disk id; the spare id overlay's own files get comes from the top down. */
const MAX_ID = 0xfffffffe;

function flat(map: IdMapping[]): number[] {
  return map.flatMap((m) => [m.containerId, m.hostId, m.size]);
}

function unflat(ids: number[]): IdMapping[] {
  const out: IdMapping[] = [];
  for (let i = 0; i + 2 < ids.length; i += 3) out.push({ containerId: ids[i]!, hostId: ids[i + 1]!, size: ids[i + 2]! });
  return out;
}

/** An on-disk id no range of `map` covers, from the top down; undefined when the maps cover everything. */
export function spareId(map: IdMapping[]): number | undefined {
  let candidate = MAX_ID;
  // Bounded: every step jumps below one range.
  for (let i = 0; i <= map.length; i++) {
    const hit = map.find((m) => candidate >= m.containerId && candidate < m.containerId + m.size);
    if (!hit) return candidate;
    if (hit.containerId === 0) return undefined;
    candidate = hit.containerId - 1;
  }
  return undefined;
}

/** `map` plus `spare → host 0`, unless host 0 is mapped already (then overlay's own files are fine as they are). */
function withMounterLine(map: IdMapping[], what: string): IdMapping[] {
  if (map.some((m) => m.hostId === 0)) return map;
  if (map.length >= 340) throw new UnsupportedError('TSG_UNSUPPORTED', `idmap ${what} has 340 lines: none is left for overlay's own files`);
  const spare = spareId(map);
  if (spare === undefined) throw new UnsupportedError('TSG_UNSUPPORTED', `idmap ${what} maps every id: none is left for overlay's own files`);
  return [...map, { containerId: spare, hostId: 0, size: 1 }];
}

function mapError(err: unknown, what: string): TsgraphError {
  const e = err as NodeJS.ErrnoException & { detail?: string };
  const data = { errno: e.code, syscall: e.syscall, detail: e.detail };
  if (typeof e.code === 'string' && /^ERR_(INVALID_ARG|OUT_OF_RANGE)/.test(e.code)) {
    return new UsageError('TSG_USAGE', `${what}: ${e.message}`, { cause: err, data });
  }
  if (e.code === 'EINVAL' && (e.syscall === 'ioctl' || e.syscall === 'open')) return new UsageError('TSG_USAGE', `${what}: ${e.message}`, { cause: err, data });
  if (e.code === 'ENOENT' || e.code === 'EBADF') return new UsageError('TSG_USAGE', `${what}: ${e.message}`, { cause: err, data });
  if (e.code === 'EPERM' || e.code === 'EACCES') {
    return new UnsupportedError('TSG_UNSUPPORTED', `${what}: not permitted (${e.message}); making a user namespace from id maps needs root`, { cause: err, data });
  }
  if (e.code === 'ENOSYS') return new UnsupportedError('TSG_UNSUPPORTED', `${what}: this kernel has no idmapped mounts (${e.message})`, { cause: err, data });
  return new TsgraphError('TSG_INTERNAL', `${what} failed: ${e.message}`, { cause: err, data });
}

/**
 * The user namespaces one idmapped mount needs, open for as long as the
 * mount is being made. `close()` closes what this opened (never a caller's fd).
 */
export interface IdmapNamespaces {
  /** The namespace as asked for: bind mounts and overlay's lowers. */
  readonly fd: number;
  /** The one for overlay's upper and work dir (see the file comment); made on first use. */
  upperFd(): number;
  /** `user:[inode]` of the namespace, stable while it lives: what tells two idmaps apart. */
  readonly id: string;
  close(): void;
}

/** Opens (or makes) the user namespace an idmap option names. */
export function openIdmap(idmap: IdmapOption): IdmapNamespaces {
  const n = nativeIdmap();
  const owned: number[] = [];
  let fd: number;
  let maps: { uidMap: IdMapping[]; gidMap: IdMapping[] } | undefined;
  try {
    if ('userns' in idmap) {
      if (typeof idmap.userns === 'number') {
        n.usernsCheck(idmap.userns);
        fd = idmap.userns;
      } else {
        fd = n.usernsOpen(idmap.userns);
        owned.push(fd);
      }
    } else {
      maps = { uidMap: idmap.uidMap, gidMap: idmap.gidMap };
      fd = n.usernsCreate(flat(idmap.uidMap), flat(idmap.gidMap));
      owned.push(fd);
    }
  } catch (err) {
    for (const f of owned) closeSync(f);
    throw mapError(err, 'idmap user namespace');
  }
  let upper: number | undefined;
  const id = readlinkSync(`/proc/self/fd/${fd}`);
  return {
    fd,
    id,
    upperFd() {
      if (upper !== undefined) return upper;
      try {
        if (!maps) {
          const m = n.usernsMaps(fd);
          maps = { uidMap: unflat(m.uidMap), gidMap: unflat(m.gidMap) };
          if (maps.uidMap.length === 0 || maps.gidMap.length === 0) {
            throw new UsageError('TSG_USAGE', `the user namespace ${id} has no uid or gid map yet`);
          }
        }
        const uid = withMounterLine(maps.uidMap, 'uidMap');
        const gid = withMounterLine(maps.gidMap, 'gidMap');
        if (uid === maps.uidMap && gid === maps.gidMap) return (upper = fd);
        upper = n.usernsCreate(flat(uid), flat(gid));
        owned.push(upper);
        return upper;
      } catch (err) {
        throw err instanceof TsgraphError ? err : mapError(err, 'idmap user namespace for the upper layer');
      }
    },
    close() {
      for (const f of owned.splice(0)) closeSync(f);
    },
  };
}

/** The maps overlay's upper needs for `idmap` (see the file comment): maps as given or read from the namespace, plus the mounter line. */
export function upperMaps(idmap: IdmapOption): { uidMap: IdMapping[]; gidMap: IdMapping[] } {
  let maps: { uidMap: IdMapping[]; gidMap: IdMapping[] };
  if ('userns' in idmap) {
    const ns = openIdmap(idmap);
    try {
      const m = nativeIdmap().usernsMaps(ns.fd);
      maps = { uidMap: unflat(m.uidMap), gidMap: unflat(m.gidMap) };
    } catch (err) {
      throw err instanceof TsgraphError ? err : mapError(err, 'idmap user namespace maps');
    } finally {
      ns.close();
    }
  } else {
    maps = idmap;
  }
  return { uidMap: withMounterLine(maps.uidMap, 'uidMap'), gidMap: withMounterLine(maps.gidMap, 'gidMap') };
}

/** Runs `fn` with the namespaces of `idmap` open; closes them after. */
export function withIdmap<T>(idmap: IdmapOption, fn: (ns: IdmapNamespaces) => T): T {
  const ns = openIdmap(idmap);
  try {
    return fn(ns);
  } finally {
    ns.close();
  }
}

/** Parses `containerId:hostId:size` (the CLI's --uidmap / --gidmap). */
export function parseIdMapping(text: string, what = 'id map'): IdMapping {
  const m = /^(\d{1,10}):(\d{1,10}):(\d{1,10})$/.exec(text);
  if (!m) throw new UsageError('TSG_USAGE', `${what} ${JSON.stringify(text)} must be CONTAINER:HOST:SIZE (e.g. 0:100000:65536)`);
  return { containerId: Number(m[1]), hostId: Number(m[2]), size: Number(m[3]) };
}
