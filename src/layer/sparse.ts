/**
 * GNU sparse files in PAX format (tar --sparse --posix), versions 0.0, 0.1 and
 * 1.0, rebuilt with their holes.
 *
 *   0.0  GNU.sparse.size + repeated GNU.sparse.offset/numbytes records (the
 *        record parser joins those into GNU.sparse.map, as Go's archive/tar does);
 *   0.1  GNU.sparse.size + GNU.sparse.map "off,len,off,len,…";
 *   1.0  GNU.sparse.major=1/minor=0 + GNU.sparse.realsize; the map leads the
 *        entry data as decimal lines (count, then off/len pairs), padded to 512.
 * In every version the real name is GNU.sparse.name when present (the header
 * name is then `…/GNUSparseFile.<pid>/<name>`), and the stored data is the
 * segments back to back. Old-style GNU sparse (type 'S') is refused by the
 * scanner (tar-scan.ts).
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { TsgraphError, UnsupportedError } from '../errors.js';
import { displayPath } from '../util/byte-path.js';
import { writeAll } from '../util/fs-helpers.js';
import { BLOCK, MAX_PAX_BYTES } from './tar-scan.js';

export interface SparseInfo {
  version: '0.x' | '1.0';
  /** The file's real (apparent) size. */
  realSize: number;
  /** [offset, length] segments for 0.x; read from the data for 1.0. */
  map: Array<[number, number]> | undefined;
  /** GNU.sparse.name, a byte string, when present. */
  name: string | undefined;
}

const DIGITS = /^[0-9]+$/;

function bad(name: string, why: string): TsgraphError {
  return new TsgraphError('TSG_INVALID_LAYER', `layer entry ${JSON.stringify(displayPath(name))}: bad GNU sparse data: ${why}`);
}

function num(text: string | undefined, name: string, what: string): number {
  const n = text !== undefined && DIGITS.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw bad(name, `${what} is ${JSON.stringify((text ?? '(missing)').slice(0, 40))}`);
  return n;
}

/** The sparse description of an entry's PAX records, or undefined for an ordinary entry. */
export function sparseOf(records: Map<string, Buffer> | undefined, name: string): SparseInfo | undefined {
  if (!records) return undefined;
  const get = (k: string) => records.get(k)?.toString('latin1');
  const major = get('GNU.sparse.major');
  const minor = get('GNU.sparse.minor');
  let version: SparseInfo['version'];
  if (major === '1' && minor === '0') version = '1.0';
  else if (major === '0' && (minor === '0' || minor === '1')) version = '0.x';
  else if (major !== undefined || minor !== undefined) {
    throw new UnsupportedError('TSG_UNSUPPORTED', `layer entry ${JSON.stringify(displayPath(name))} is a GNU sparse file of unknown version ${major}.${minor}`);
  } else if (records.has('GNU.sparse.map')) version = '0.x';
  else if ([...records.keys()].some((k) => k.startsWith('GNU.sparse.'))) throw bad(name, 'GNU.sparse records without a map or version');
  else return undefined;
  const nameBytes = records.get('GNU.sparse.name');
  const realSize = num(get('GNU.sparse.size') ?? get('GNU.sparse.realsize'), name, 'the real size');
  let map: SparseInfo['map'];
  if (version === '0.x') {
    const text = get('GNU.sparse.map') ?? '';
    const parts = text === '' ? [] : text.split(',');
    if (parts.length % 2 !== 0) throw bad(name, 'GNU.sparse.map has an odd number of values');
    map = [];
    for (let i = 0; i < parts.length; i += 2) map.push([num(parts[i], name, 'a map offset'), num(parts[i + 1], name, 'a map length')]);
    const blocks = get('GNU.sparse.numblocks');
    if (blocks !== undefined && num(blocks, name, 'numblocks') !== map.length) throw bad(name, 'GNU.sparse.numblocks does not match the map');
  }
  return { version, realSize, map, name: nameBytes ? nameBytes.toString('latin1') : undefined };
}

/** Pulls exact byte counts out of an entry body. */
class BodyReader {
  #it: AsyncIterator<Buffer>;
  #buf: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  constructor(body: Readable) {
    this.#it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }
  /** Up to `max` bytes (at least one), or null at the end of the body. */
  async some(max: number): Promise<Buffer | null> {
    if (this.#buf.length === 0) {
      const next = await this.#it.next();
      if (next.done) return null;
      this.#buf = next.value;
    }
    const out = this.#buf.subarray(0, max);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }
  /** Drains the rest; returns how many bytes were left. */
  async rest(): Promise<number> {
    let n = this.#buf.length;
    this.#buf = Buffer.alloc(0);
    for (let next = await this.#it.next(); !next.done; next = await this.#it.next()) n += next.value.length;
    return n;
  }
}

/** The 1.0 map at the start of the data: decimal lines, padded to a block. Returns [map, bytes used]. */
async function readMap10(r: BodyReader, name: string): Promise<[Array<[number, number]>, number]> {
  let text = '';
  let used = 0;
  const values: number[] = [];
  let count = -1;
  while (count < 0 || values.length < 2 * count) {
    const nl = text.indexOf('\n');
    if (nl >= 0) {
      const v = num(text.slice(0, nl), name, 'a map value');
      text = text.slice(nl + 1);
      if (count < 0) count = v;
      else values.push(v);
      continue;
    }
    if (used > MAX_PAX_BYTES) throw bad(name, `the sparse map is larger than ${MAX_PAX_BYTES} bytes`);
    // Never read across a block boundary: the data starts at the next one.
    const chunk = await r.some(BLOCK - (used % BLOCK));
    if (!chunk) throw bad(name, 'the data ends inside the sparse map');
    used += chunk.length;
    text += chunk.toString('latin1');
  }
  // The map is padded with NULs to a whole block; what we read past it is that padding.
  const padded = Math.ceil((used - text.length) / BLOCK) * BLOCK;
  let extra = padded - used;
  if (!/^\0*$/.test(text)) throw bad(name, 'junk after the sparse map');
  while (extra > 0) {
    const chunk = await r.some(extra);
    if (!chunk) throw bad(name, 'the data ends inside the sparse map');
    if (chunk.some((b) => b !== 0)) throw bad(name, 'junk after the sparse map');
    extra -= chunk.length;
    used += chunk.length;
  }
  const map: Array<[number, number]> = [];
  for (let i = 0; i < values.length; i += 2) map.push([values[i]!, values[i + 1]!]);
  return [map, used];
}

/**
 * Writes a sparse entry's body to `fd`: each segment at its offset, holes left
 * unwritten, the file truncated to its real size. `size` is the entry's stored
 * size. Returns the data bytes written.
 */
export async function writeSparse(fd: number, body: Readable, info: SparseInfo, size: number, name: string): Promise<number> {
  const r = new BodyReader(body);
  let map = info.map;
  let dataSize = size;
  if (!map) {
    const [m, used] = await readMap10(r, name);
    map = m;
    dataSize -= used;
  }
  let end = 0;
  let total = 0;
  for (const [offset, length] of map) {
    if (offset < end) throw bad(name, 'map segments overlap or are out of order');
    if (offset + length > info.realSize) throw bad(name, 'a map segment lies past the real size');
    end = offset + length;
    total += length;
  }
  if (total !== dataSize) throw bad(name, `the map describes ${total} bytes but the entry holds ${dataSize}`);
  for (const [offset, length] of map) {
    let done = 0;
    while (done < length) {
      const chunk = await r.some(length - done);
      if (!chunk) throw bad(name, 'the data ends early');
      writeAll(fd, chunk, offset + done);
      done += chunk.length;
    }
  }
  if ((await r.rest()) !== 0) throw bad(name, 'data left after the last segment');
  fs.ftruncateSync(fd, info.realSize);
  return total;
}
