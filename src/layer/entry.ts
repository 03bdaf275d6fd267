/**
 * One tar header → one validated layer entry. Every number that reaches a
 * syscall is checked here to be an integer in range (tar-stream parses
 * leniently: garbage becomes NaN, base-256 can exceed 2^32), and names come
 * out as byte strings: ustar/GNU names decoded latin1 by tar-stream, PAX
 * path/linkpath taken byte-exact from the scanner's records instead of
 * tar-stream's UTF-8 decoding.
 */
import type tar from 'tar-stream';
import { TsgraphError } from '../errors.js';
import { byteString, displayPath } from '../util/byte-path.js';
import { xattrsOf } from './pax.js';
import { type SparseInfo, sparseOf } from './sparse.js';
import type { PaxRecords } from './tar-scan.js';

export interface Entry {
  /** The name as in the tar (a byte string, not yet cleaned). */
  name: string;
  type: tar.Header['type'];
  /** Symlink or hardlink target (byte string); '' when none. */
  linkname: string;
  /** Permission bits (mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  mtime: Date;
  /** Stored data size. */
  size: number;
  devmajor: number;
  devminor: number;
  xattrs: Array<[string, Buffer]>;
  sparse: SparseInfo | undefined;
}

/** Largest ids a Linux uid_t/gid_t holds ((uid_t)-1 means "no change" to chown). */
const MAX_ID = 0xfffffffe;
/** What the kernel's dev_t keeps: 12-bit major, 20-bit minor. */
export const MAX_MAJOR = 0xfff;
export const MAX_MINOR = 0xfffff;
/** Seconds a JS Date can hold. */
const MAX_SECONDS = 8.64e12;

function refuse(name: string, why: string): TsgraphError {
  return new TsgraphError('TSG_INVALID_LAYER', `layer entry ${JSON.stringify(displayPath(name.slice(0, 200)))}: ${why}`);
}

function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function paxInt(records: Map<string, Buffer> | undefined, key: string, name: string): number | undefined {
  const raw = records?.get(key);
  if (raw === undefined) return undefined;
  const text = raw.toString('latin1');
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw refuse(name, `PAX ${key} is not a number: ${JSON.stringify(text.slice(0, 40))}`);
  return n;
}

export function resolveEntry(header: tar.Header, pax: PaxRecords): Entry {
  const offset = (header as tar.Header & { byteOffset?: number }).byteOffset;
  const records = offset !== undefined ? pax.get(offset) : undefined;
  const path = records?.get('path');
  let name = path !== undefined && path.length > 0 ? byteString(path) : (header.name ?? '');
  const linkpath = records?.get('linkpath');
  const linkname = linkpath !== undefined && linkpath.length > 0 ? byteString(linkpath) : (header.linkname ?? '');

  const uid = paxInt(records, 'uid', name) ?? header.uid;
  const gid = paxInt(records, 'gid', name) ?? header.gid;
  if (!intIn(uid, 0, MAX_ID) || !intIn(gid, 0, MAX_ID)) throw refuse(name, `invalid owner ${uid}:${gid}`);
  if (!intIn(header.mode, 0, 0o7777777)) throw refuse(name, `invalid mode ${header.mode}`);
  if (!intIn(header.size, 0, Number.MAX_SAFE_INTEGER)) throw refuse(name, `invalid size ${header.size}`);

  let mtime = header.mtime;
  const paxMtime = records?.get('mtime')?.toString('latin1');
  if (paxMtime !== undefined) {
    if (!/^-?[0-9]+(\.[0-9]+)?$/.test(paxMtime)) throw refuse(name, `PAX mtime is not a time: ${JSON.stringify(paxMtime.slice(0, 40))}`);
    mtime = new Date(Number(paxMtime) * 1000);
  }
  const seconds = mtime ? mtime.getTime() / 1000 : NaN;
  if (!mtime || !Number.isFinite(seconds) || Math.abs(seconds) > MAX_SECONDS) throw refuse(name, 'invalid mtime');

  let devmajor = 0;
  let devminor = 0;
  if (header.type === 'character-device' || header.type === 'block-device') {
    // Checked before the 0/0 whiteout guard: a NaN or 2^32 major must not wrap to 0 on the way down.
    if (!intIn(header.devmajor, 0, MAX_MAJOR) || !intIn(header.devminor, 0, MAX_MINOR)) {
      throw refuse(name, `device number ${header.devmajor}:${header.devminor} is out of range (major ≤ ${MAX_MAJOR}, minor ≤ ${MAX_MINOR})`);
    }
    devmajor = header.devmajor;
    devminor = header.devminor;
  }

  const sparse = sparseOf(records, name);
  if (sparse) {
    if (header.type !== 'file' && header.type !== 'contiguous-file') throw refuse(name, 'GNU sparse records on a non-file entry');
    if (sparse.name !== undefined && sparse.name.length > 0) name = sparse.name;
  }
  return {
    name,
    type: header.type,
    linkname,
    perm: header.mode & 0o7777,
    uid,
    gid,
    mtime,
    size: header.size,
    devmajor,
    devminor,
    xattrs: xattrsOf(records),
    sparse,
  };
}
