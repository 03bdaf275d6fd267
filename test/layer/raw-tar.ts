/**
 * Byte-level tar building for tests that need what tar-stream's packer will
 * not write: non-UTF-8 names, binary PAX values, garbage numeric fields,
 * GNU long names, data after the end-of-archive marker.
 */
import { encodePaxRecord } from '../../src/layer/pax.js';

const BLOCK = 512;
type Field = 'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'devmajor' | 'devminor';
const FIELDS: Record<Field, [number, number]> = {
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  devmajor: [329, 8],
  devminor: [337, 8],
};

export interface RawEntry {
  /** Bytes of the name (a string is taken as UTF-8). */
  name: Buffer | string;
  /** Typeflag character; '0' by default. */
  type?: string;
  data?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: Buffer | string;
  devmajor?: number;
  devminor?: number;
  /** PAX records for an 'x' header before the entry, values byte-exact. */
  pax?: Array<[string, Buffer | string]>;
  /** Raw bytes for numeric fields (written as given, NUL-padded), to break them. */
  raw?: Partial<Record<Field, Buffer>>;
  /** Declared size when it must differ from the data length. */
  size?: number;
}

const bytes = (v: Buffer | string) => (Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8'));
const octal = (n: number, width: number) => Buffer.from(`${n.toString(8).padStart(width - 1, '0')}\0`, 'latin1');
const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((BLOCK - (b.length % BLOCK)) % BLOCK)]);

/** One 512-byte ustar header with a correct checksum. */
export function rawHeader(e: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  bytes(e.name).copy(h, 0, 0, 100);
  const values: Record<Field, number> = {
    mode: e.mode ?? (e.type === '5' ? 0o755 : 0o644),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    size,
    mtime: e.mtime ?? 1704067200,
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  };
  for (const [field, [at, len]] of Object.entries(FIELDS) as Array<[Field, [number, number]]>) {
    const raw = e.raw?.[field];
    (raw ?? octal(values[field], len)).copy(h, at, 0, len);
  }
  h.write(e.type ?? '0', 156, 'latin1');
  if (e.linkname !== undefined) bytes(e.linkname).copy(h, 157, 0, 100);
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** Header (+ PAX header) + padded data of one entry. */
export function rawEntry(e: RawEntry): Buffer {
  const data = e.data === undefined ? Buffer.alloc(0) : bytes(e.data);
  const parts: Buffer[] = [];
  if (e.pax) {
    const records = Buffer.concat(e.pax.map(([k, v]) => encodePaxRecord(k, bytes(v))));
    parts.push(rawHeader({ name: 'PaxHeaders/x', type: 'x' }, records.length), pad(records));
  }
  parts.push(rawHeader(e, e.size ?? data.length), pad(data));
  return Buffer.concat(parts);
}

/** A whole archive: entries, then the end-of-archive marker (two zero blocks), then `after`. */
export function rawTar(entries: RawEntry[], after: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([...entries.map(rawEntry), Buffer.alloc(2 * BLOCK), after]);
}
