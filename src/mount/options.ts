/**
 * Checks MountOptions before anything is made or mounted: a bad label, an
 * overlay option that would change which directories are layers or make the
 * upper unsafe, or a malformed id map is a TSG_USAGE error naming what is
 * wrong. The native side checks again (native/idmap.cc, mount-api.cc).
 */
import { UnsupportedError, UsageError } from '../errors.js';
import type { IdMapping, IdmapOption, MountOptions } from './mount-spec.js';

/** fsconfig copies at most 255 bytes of a value; a label is one value. */
export const MAX_LABEL = 255;

/**
 * An SELinux context: `user:role:type[:level]`, the level being
 * `s0[-s0][:c0,c1…]` (MCS categories use commas: they are allowed, and
 * quoted in a classic option string). No quotes, spaces, NUL or control
 * characters: nothing that could end the value in an option string.
 */
const LABEL_RE = /^[A-Za-z0-9_.]+:[A-Za-z0-9_.]+:[A-Za-z0-9_.]+(?::[A-Za-z0-9_.:,-]+)?$/;

export function checkLabel(label: string): void {
  if (typeof label !== 'string') throw new UsageError('TSG_USAGE', 'label must be a string');
  if (label.length === 0 || Buffer.byteLength(label) > MAX_LABEL) {
    throw new UsageError('TSG_USAGE', `label must be 1 to ${MAX_LABEL} bytes`, { data: { label } });
  }
  if (!LABEL_RE.test(label)) {
    throw new UsageError('TSG_USAGE', `label ${JSON.stringify(label)} is not an SELinux context (user:role:type[:level], no quotes, spaces or NUL)`, {
      data: { label },
    });
  }
}

/** Overlay parameters that name layer directories: tsgraph decides those. */
const LAYER_KEYS = new Set(['lowerdir', 'lowerdir+', 'upperdir', 'workdir', 'datadir+', 'datadir']);

/**
 * Extra overlay parameters a caller may set, with the values allowed (null:
 * a flag). tsgraph's own index/redirect_dir/metacopy may be restated only
 * with safe values: metacopy and redirects make an upper the native differ
 * cannot read as a plain diff, and trust xattrs a layer could forge; index=on
 * breaks lower layers shared by several containers (EBUSY/ESTALE).
 */
const ALLOWED: Record<string, ReadonlySet<string> | null> = {
  default_permissions: null,
  xino: new Set(['on', 'off', 'auto']),
  uuid: new Set(['on', 'off', 'null', 'auto']),
  index: new Set(['off']),
  redirect_dir: new Set(['off', 'nofollow']),
  metacopy: new Set(['off']),
  nfs_export: new Set(['off']),
};

const WHY_REFUSED: Record<string, string> = {
  index: 'index=on breaks layers shared by several containers',
  redirect_dir: 'redirects make the upper no plain diff (and follow paths a layer wrote)',
  metacopy: 'metacopy makes the upper no plain diff and trusts metadata a layer could forge',
  nfs_export: 'nfs_export needs index=on',
  verity: 'verity needs metacopy',
  userxattr: "the overlay xattr namespace is the store's own (trusted.overlay.* for a root store, user.overlay.* for a rootless one, which mounts with userxattr itself)",
  source: 'the source name is tsgraph\'s',
  // Measured: overlay leaves work/incompat/volatile behind even after a clean unmount and refuses every later mount of that upper.
  volatile: 'a volatile container could never be mounted again (overlay keeps work/incompat/volatile and refuses the upper)',
};

/** `key=value` / `flag` → [key, value|null], or TSG_USAGE. */
export function parseOverlayOption(opt: string): [string, string | null] {
  if (typeof opt !== 'string' || opt.length === 0 || Buffer.byteLength(opt) > 255 || /[\0-\x1f\x7f,"\\\s]/.test(opt)) {
    throw new UsageError('TSG_USAGE', `overlay option ${JSON.stringify(opt)} must be key=value or a flag, without commas, quotes, spaces or control characters`);
  }
  const eq = opt.indexOf('=');
  const key = eq < 0 ? opt : opt.slice(0, eq);
  const value = eq < 0 ? null : opt.slice(eq + 1);
  if (LAYER_KEYS.has(key)) {
    throw new UsageError('TSG_USAGE', `overlay option ${key} is refused: tsgraph decides which directories are layers`, { data: { option: opt } });
  }
  // Own keys only: `in` also finds Object.prototype's (`--opt toString`, `constructor=x`).
  if (!Object.hasOwn(ALLOWED, key)) {
    const why = Object.hasOwn(WHY_REFUSED, key) ? WHY_REFUSED[key] : undefined;
    throw new UsageError('TSG_USAGE', `overlay option ${key} is refused${why ? `: ${why}` : ''}; allowed: ${Object.keys(ALLOWED).join(', ')}`, {
      data: { option: opt },
    });
  }
  const values = ALLOWED[key]!;
  if (values === null ? value !== null : value === null || !values.has(value)) {
    const why = Object.hasOwn(WHY_REFUSED, key) ? WHY_REFUSED[key] : undefined;
    const want = values === null ? 'a flag without a value' : [...values].map((v) => `${key}=${v}`).join(' or ');
    throw new UsageError('TSG_USAGE', `overlay option ${opt} is refused${why && values !== null ? ` (${why})` : ''}; allowed: ${want}`, {
      data: { option: opt },
    });
  }
  return [key, value];
}

/** The overlay options as parameters, later ones replacing earlier ones with the same key (as the kernel would). */
export function overlayParams(options: string[] | undefined): Array<[string, string | null]> {
  if (options === undefined) return [];
  if (!Array.isArray(options)) throw new UsageError('TSG_USAGE', 'overlayOptions must be an array of strings');
  if (options.length > 32) throw new UsageError('TSG_USAGE', 'at most 32 overlay options');
  const out = new Map<string, string | null>();
  for (const o of options) {
    const [k, v] = parseOverlayOption(o);
    out.delete(k);
    out.set(k, v);
  }
  return [...out];
}

const U32_MAX_ID = 0xfffffffe; // (uid_t)-1 means "no id"

function checkMap(map: unknown, what: string): IdMapping[] {
  if (!Array.isArray(map) || map.length === 0 || map.length > 340) {
    throw new UsageError('TSG_USAGE', `idmap ${what} must list 1 to 340 mappings`);
  }
  const out: IdMapping[] = [];
  for (const m of map as unknown[]) {
    const e = m as Partial<IdMapping> | null;
    const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= U32_MAX_ID;
    if (!e || typeof e !== 'object' || !ok(e.containerId) || !ok(e.hostId) || !ok(e.size) || e.size < 1) {
      throw new UsageError('TSG_USAGE', `idmap ${what}: each mapping needs integer containerId, hostId (0…${U32_MAX_ID}) and size ≥ 1`, { data: { mapping: m } });
    }
    if (e.containerId + e.size - 1 > U32_MAX_ID || e.hostId + e.size - 1 > U32_MAX_ID) {
      throw new UsageError('TSG_USAGE', `idmap ${what}: mapping ${e.containerId}:${e.hostId}:${e.size} runs past id ${U32_MAX_ID}`);
    }
    out.push({ containerId: e.containerId, hostId: e.hostId, size: e.size });
  }
  const overlaps = (a0: number, an: number, b0: number, bn: number) => a0 < b0 + bn && b0 < a0 + an;
  for (let i = 0; i < out.length; i++) {
    for (let j = i + 1; j < out.length; j++) {
      const [a, b] = [out[i]!, out[j]!];
      if (overlaps(a.containerId, a.size, b.containerId, b.size) || overlaps(a.hostId, a.size, b.hostId, b.size)) {
        throw new UsageError('TSG_USAGE', `idmap ${what}: mappings ${a.containerId}:${a.hostId}:${a.size} and ${b.containerId}:${b.hostId}:${b.size} overlap`);
      }
    }
  }
  return out;
}

/** Checks an idmap option and returns a copy with only its own fields. */
export function checkIdmap(idmap: IdmapOption): IdmapOption {
  if (!idmap || typeof idmap !== 'object') throw new UsageError('TSG_USAGE', 'idmap must be { userns } or { uidMap, gidMap }');
  if ('userns' in idmap) {
    if ('uidMap' in idmap || 'gidMap' in idmap) throw new UsageError('TSG_USAGE', 'idmap takes either userns or uidMap/gidMap, not both');
    const u = idmap.userns;
    if (typeof u === 'number') {
      if (!Number.isInteger(u) || u < 0 || u > 0x7fffffff) throw new UsageError('TSG_USAGE', `idmap userns fd ${u} is not a file descriptor`);
      return { userns: u };
    }
    if (typeof u !== 'string' || u.length === 0 || u.includes('\0') || Buffer.byteLength(u) > 4095) {
      throw new UsageError('TSG_USAGE', 'idmap userns must be a path (e.g. /proc/PID/ns/user) or an fd');
    }
    return { userns: u };
  }
  return { uidMap: checkMap(idmap.uidMap, 'uidMap'), gidMap: checkMap(idmap.gidMap, 'gidMap') };
}

/** What kind of mount the options are for: bind mounts take no label and no overlay options. */
export type MountKind = 'overlay' | 'bind' | 'aufs';

/** Checks `options` for a `kind` mount; returns a normalized copy (TSG_USAGE / TSG_UNSUPPORTED on refusal). */
export function checkMountOptions(options: MountOptions, kind?: MountKind): MountOptions {
  if (options === null || typeof options !== 'object') throw new UsageError('TSG_USAGE', 'mount options must be an object');
  const out: MountOptions = {};
  if (options.readOnly !== undefined) {
    if (typeof options.readOnly !== 'boolean') throw new UsageError('TSG_USAGE', 'readOnly must be a boolean');
    out.readOnly = options.readOnly;
  }
  if (options.label !== undefined) {
    checkLabel(options.label);
    out.label = options.label;
  }
  if (options.overlayOptions !== undefined) {
    overlayParams(options.overlayOptions);
    out.overlayOptions = [...options.overlayOptions];
  }
  if (options.idmap !== undefined) out.idmap = checkIdmap(options.idmap);
  if (kind && kind !== 'overlay') {
    if (out.label !== undefined) {
      throw new UnsupportedError('TSG_UNSUPPORTED', `a ${kind} mount cannot carry an SELinux label (context= is a superblock option; overlay takes it): label the files instead`);
    }
    if (out.overlayOptions?.length) throw new UsageError('TSG_USAGE', `overlay options apply to the overlay driver only, not a ${kind} mount`);
  }
  if (kind === 'aufs' && out.idmap) throw new UnsupportedError('TSG_UNSUPPORTED', 'aufs mounts cannot be idmapped');
  return out;
}

/**
 * A stable text for the options that shape a mount (label, overlay options,
 * idmap): a container already mounted is mounted again only with the same.
 * Empty when there are none.
 */
export function mountOptionsKey(options: MountOptions): string {
  const parts: Record<string, unknown> = {};
  if (options.label !== undefined) parts.label = options.label;
  if (options.overlayOptions?.length) parts.overlay = overlayParams(options.overlayOptions);
  if (options.idmap) parts.idmap = options.idmap;
  return Object.keys(parts).length ? JSON.stringify(parts) : '';
}
