/**
 * A strict tar header scanner that sits in front of tar-stream.
 *
 * tar-stream is lenient where the layer rules must not be: it reads past the
 * end-of-archive marker (so entries hidden after two zero blocks would be
 * unpacked while GNU tar, Go's archive/tar and scanners stop there), parses
 * numeric fields with parseInt (garbage → NaN, "12z" → 10) and decodes PAX
 * values as UTF-8. The scanner sees every byte first and:
 *
 *  - stops the archive at the first zero block in a header position: only the
 *    bytes up to it are forwarded to tar-stream, and any non-zero byte after it
 *    is refused (zero padding is fine);
 *  - checks every header (checksum, magic, each numeric field strictly octal or
 *    base-256), and refuses what readers disagree on: a non-zero size on a
 *    header-only type (tar-stream reads data, Go does not), a global PAX header
 *    that sets path/linkpath/size (tar-stream applies it, Go ignores it),
 *    malformed PAX records, old GNU sparse ('S', whose extension blocks no
 *    reader here parses) and other unknown types;
 *  - keeps each entry's PAX records byte-exact under the offset tar-stream
 *    reports for it (`header.byteOffset`, the end of its 512-byte header).
 *
 * It follows tar-stream's own rules for where each header is (PAX `size`
 * override, long headers, the directory exception), so both always agree.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { TsgraphError, UnsupportedError } from '../errors.js';
import { byteString, displayPath } from '../util/byte-path.js';

export type PaxRecords = Map<number, Map<string, Buffer>>;

/** Bigger PAX / GNU long-name headers are refused: real ones are a few hundred bytes. */
export const MAX_PAX_BYTES = 1 << 20;
export const BLOCK = 512;
/** Zero padding accepted after the end-of-archive marker. */
export const MAX_TRAILER = 1 << 20;
const CHECKSUM = [148, 156] as const;
const ZERO = Buffer.alloc(BLOCK);

function invalid(message: string): TsgraphError {
  return new TsgraphError('TSG_INVALID_LAYER', `layer tar is malformed: ${message}`);
}

/**
 * A numeric header field, strictly: octal digits between optional spaces/NULs
 * (as Go's archive/tar and GNU tar read it), or base-256 with a 0x80
 * (positive) or 0xff (negative) first byte (as GNU tar writes big values).
 * NaN when malformed — and NaN when tar-stream, which does the unpacking,
 * would read the same bytes as another number: a size field that scanners
 * read as 512 and tar-stream as 0 would frame the archive two ways and hide
 * an entry from every scanner, a uid read as 1000 by them and 0 by us would
 * hide a setuid-root file. One reading or none.
 */
export function parseNumericField(field: Uint8Array, at = 0, len = field.length - at): number {
  const n = strictNumber(field, at, len);
  return Number.isNaN(n) || n === tarStreamReading(field.subarray(at, at + len)) ? n : NaN;
}

/** What tar-stream 3's decodeOct makes of a field (kept in step with node_modules/tar-stream/headers.js). */
function tarStreamReading(val: Uint8Array): number {
  if (val.length === 0) return 0;
  if (val[0]! & 0x80) {
    if (val[0] !== 0x80 && val[0] !== 0xff) return NaN;
    const positive = val[0] === 0x80;
    let sum = 0;
    for (let i = 1; i < val.length; i++) sum = sum * 256 + (positive ? val[i]! : 0xff - val[i]!);
    return positive ? sum : -sum;
  }
  let offset = 0;
  while (offset < val.length && val[offset] === 0x20) offset++;
  let end = val.indexOf(0x20, offset);
  if (end < 0) end = val.length;
  while (offset < end && val[offset] === 0) offset++;
  if (end === offset) return 0;
  return parseInt(Buffer.from(val.subarray(offset, end)).toString('latin1'), 8);
}

function strictNumber(field: Uint8Array, at: number, len: number): number {
  if (len <= 0) return 0;
  const first = field[at]!;
  if (first & 0x80) {
    if (first !== 0x80 && first !== 0xff) return NaN;
    const negative = first === 0xff;
    let n = 0;
    for (let i = at + 1; i < at + len; i++) n = n * 256 + (negative ? 0xff - field[i]! : field[i]!);
    if (negative) n = -(n + 1);
    return Number.isSafeInteger(n) ? n : NaN;
  }
  let start = at;
  let end = at + len;
  while (start < end && (field[start] === 0x20 || field[start] === 0)) start++;
  while (end > start && (field[end - 1] === 0x20 || field[end - 1] === 0)) end--;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = field[i]!;
    if (c < 0x30 || c > 0x37) return NaN;
    n = n * 8 + (c - 0x30);
  }
  return Number.isSafeInteger(n) ? n : NaN;
}

const PAX_LEN = /^[0-9]+$/;

/**
 * PAX records ("<len> <key>=<value>\n") with values as Buffers. Malformed
 * data is refused. GNU sparse 0.0 repeats GNU.sparse.offset/numbytes, which a
 * map would collapse; they are joined into GNU.sparse.map as Go does.
 */
export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const sparse: string[] = [];
  let off = 0;
  // Some writers pad the records with NULs; tar-stream stops there too.
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  buf = buf.subarray(0, end);
  while (off < buf.length) {
    const space = buf.indexOf(0x20, off);
    const lenText = space < 0 ? '' : buf.subarray(off, space).toString('latin1');
    const len = PAX_LEN.test(lenText) ? Number(lenText) : NaN;
    if (!Number.isSafeInteger(len) || off + len > buf.length || space + 1 >= off + len || buf[off + len - 1] !== 0x0a) {
      throw invalid(`bad PAX record at byte ${off} of its header`);
    }
    const record = buf.subarray(space + 1, off + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw invalid(`PAX record without a key at byte ${off} of its header`);
    const key = record.subarray(0, eq).toString('utf8');
    const value = Buffer.from(record.subarray(eq + 1));
    if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
      const want = sparse.length % 2 === 0 ? 'GNU.sparse.offset' : 'GNU.sparse.numbytes';
      if (key !== want || value.includes(0x2c)) throw invalid('GNU.sparse.offset/numbytes records out of order');
      sparse.push(value.toString('latin1'));
    } else {
      out.set(key, value);
    }
    off += len;
  }
  if (sparse.length > 0) out.set('GNU.sparse.map', Buffer.from(sparse.join(','), 'latin1'));
  return out;
}

/** Reads a NUL-terminated field as a byte string. */
function cstr(h: Buffer, start: number, len: number): string {
  const field = h.subarray(start, start + len);
  const nul = field.indexOf(0);
  return byteString(nul < 0 ? field : field.subarray(0, nul));
}

const USTAR = Buffer.from('ustar\0');
const GNU = Buffer.from('ustar  \0');
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
const ENTRY_TYPES = new Set(['0', '\0', '1', '2', '3', '4', '5', '6', '7']);
const NUMERIC_FIELDS: Array<[string, number, number]> = [
  ['mode', 100, 8],
  ['uid', 108, 8],
  ['gid', 116, 8],
  ['mtime', 136, 12],
  ['devmajor', 329, 8],
  ['devminor', 337, 8],
];

/** tar-stream's rule for old tars: a regular file whose (ustar) name ends in "/" is a directory. */
function isOldDir(h: Buffer, type: string, ustar: boolean): boolean {
  if (type !== '0' && type !== '\0') return false;
  const name = cstr(h, 0, 100);
  return (ustar && h[345] ? `${cstr(h, 345, 155)}/${name}` : name).endsWith('/');
}

/**
 * Streams known to have come out of a TarTap: applyTar need not scan them
 * again. Keyed by the stream object, so only our own pipeline can be in it.
 */
const scanned = new WeakMap<object, PaxRecords>();

export function markScanned(stream: object, records: PaxRecords): void {
  scanned.set(stream, records);
}

export function scannedRecords(stream: object): PaxRecords | undefined {
  return scanned.get(stream);
}

export class TarScanner {
  readonly records: PaxRecords = new Map();
  #pos = 0;
  #header = Buffer.alloc(0);
  #skip = 0; // bytes of entry data + padding still to pass
  #collect: Buffer[] | null = null; // data of a PAX / long-name header being read
  #collectLeft = 0;
  #collectType = '';
  #pending: Map<string, Buffer> | null = null;
  #longName: string | null = null;
  #ended = false;
  #trailer = 0; // zero bytes seen after the end-of-archive marker

  /** Feeds `chunk`; returns how many of its bytes belong to the archive (to forward). */
  scan(chunk: Buffer): number {
    if (this.#ended) {
      this.#checkTrailer(chunk, 0);
      return 0;
    }
    let off = 0;
    while (off < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - off);
        if (this.#collect && this.#collectLeft > 0) {
          const take = Math.min(n, this.#collectLeft);
          this.#collect.push(chunk.subarray(off, off + take));
          this.#collectLeft -= take;
          if (this.#collectLeft === 0) this.#collected();
        }
        this.#skip -= n;
        off += n;
        this.#pos += n;
        continue;
      }
      if (this.#header.length === 0 && chunk.length - off >= BLOCK) {
        // The usual case: the whole header is in this chunk, no copy needed.
        this.#onHeader(chunk.subarray(off, off + BLOCK), this.#pos);
        off += BLOCK;
        this.#pos += BLOCK;
      } else {
        const take = Math.min(BLOCK - this.#header.length, chunk.length - off);
        this.#header = Buffer.concat([this.#header, chunk.subarray(off, off + take)]);
        off += take;
        this.#pos += take;
        if (this.#header.length < BLOCK) continue;
        this.#onHeader(this.#header, this.#pos - BLOCK);
        this.#header = Buffer.alloc(0);
      }
      if (this.#ended) {
        this.#checkTrailer(chunk, off);
        return off;
      }
    }
    return chunk.length;
  }

  /** At the end of input: an archive cut inside a header or an entry is refused. */
  end(): void {
    if (this.#ended) return;
    if (this.#skip > 0 || this.#header.length > 0) throw invalid(`the archive ends in the middle of an entry (at byte ${this.#pos})`);
  }

  #checkTrailer(chunk: Buffer, from: number): void {
    for (let i = from; i < chunk.length; i++) {
      if (chunk[i] !== 0) {
        throw invalid(`data after the end-of-archive marker (byte ${this.#pos + i - from}); other tools would not see it`);
      }
    }
    this.#pos += chunk.length - from;
    this.#trailer += chunk.length - from;
    // Tar writers pad to their record size (GNU tar: 10 KiB); gigabytes of zeros after the end
    // are not an archive but a way to make us hash and read forever (`load -i /dev/zero`).
    if (this.#trailer > MAX_TRAILER) throw invalid(`more than ${MAX_TRAILER >> 20} MiB of padding after the end-of-archive marker`);
  }

  #collected(): void {
    const data = Buffer.concat(this.#collect!);
    this.#collect = null;
    if (this.#collectType === 'x') {
      this.#pending = parsePaxRecords(data);
    } else if (this.#collectType === 'g') {
      const global = parsePaxRecords(data);
      for (const key of ['path', 'linkpath', 'size']) {
        if (global.has(key)) throw invalid(`a global PAX header sets "${key}", which tar readers disagree on`);
      }
    } else if (this.#collectType === 'L') {
      this.#longName = cstr(data, 0, data.length);
    }
  }

  #entryName(h: Buffer): string {
    const path = this.#pending?.get('path');
    if (path) return byteString(path);
    if (this.#longName !== null) return this.#longName;
    const name = cstr(h, 0, 100);
    return h.subarray(257, 263).equals(USTAR) && h[345] ? `${cstr(h, 345, 155)}/${name}` : name;
  }

  #onHeader(h: Buffer, start: number): void {
    // All zero but (maybe) the checksum field is what tar-stream skips as an end block.
    if (ZERO.compare(h, 0, CHECKSUM[0], 0, CHECKSUM[0]) === 0 && ZERO.compare(h, CHECKSUM[1], BLOCK, CHECKSUM[1], BLOCK) === 0) {
      if (ZERO.compare(h, CHECKSUM[0], CHECKSUM[1], CHECKSUM[0], CHECKSUM[1]) !== 0) throw invalid(`a header block at byte ${start} is empty but for its checksum`);
      this.#ended = true; // end-of-archive: nothing after this block is part of the archive
      return;
    }
    // (The checksum itself is tar-stream's to verify: a bad one fails the layer there.)
    const ustar = USTAR.compare(h, 257, 263) === 0;
    if (!ustar && GNU.compare(h, 257, 265) !== 0) throw invalid(`header at byte ${start}: not a ustar/GNU header`);
    const type = String.fromCharCode(h[156]!);
    const ustarSize = parseNumericField(h, 124, 12);
    if (!(ustarSize >= 0)) throw invalid(`header at byte ${start}: bad size field`);
    for (const [field, at, len] of NUMERIC_FIELDS) {
      if (Number.isNaN(parseNumericField(h, at, len))) {
        throw invalid(`entry ${JSON.stringify(displayPath(this.#entryName(h)))}: header field ${field} is not a number`);
      }
    }
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (ustarSize > MAX_PAX_BYTES) {
        throw new TsgraphError('TSG_INVALID_LAYER', `layer has a ${ustarSize}-byte ${type === 'x' || type === 'g' ? 'PAX' : 'extended'} header (limit ${MAX_PAX_BYTES})`);
      }
      this.#skip = Math.ceil(ustarSize / BLOCK) * BLOCK;
      this.#collect = [];
      this.#collectLeft = ustarSize;
      this.#collectType = type;
      if (ustarSize === 0) this.#collected();
      return;
    }
    if (type === 'S') {
      throw new UnsupportedError(
        'TSG_UNSUPPORTED',
        `layer entry ${JSON.stringify(displayPath(this.#entryName(h)))} is an old-style GNU sparse file (tar type S), which tsgraph does not unpack; PAX sparse files (tar --sparse --posix) are supported`,
      );
    }
    if (!ENTRY_TYPES.has(type)) {
      throw new UnsupportedError('TSG_UNSUPPORTED', `layer entry ${JSON.stringify(displayPath(this.#entryName(h)))} has unsupported tar type ${JSON.stringify(type)}`);
    }
    let size = ustarSize;
    const paxSize = this.#pending?.get('size');
    // tar-stream takes a non-empty PAX size over the header's; so must we, strictly.
    if (paxSize && paxSize.length > 0) {
      const text = paxSize.toString('latin1');
      size = /^[0-9]+$/.test(text) ? Number(text) : NaN;
      if (!Number.isSafeInteger(size)) throw invalid(`entry ${JSON.stringify(displayPath(this.#entryName(h)))}: bad PAX size ${JSON.stringify(text.slice(0, 40))}`);
    }
    // tar-stream's rule for old tars: a regular file whose (ustar) name ends in "/" is a directory.
    if (size > 0 && (HEADER_ONLY.has(type) || isOldDir(h, type, ustar))) {
      throw invalid(`entry ${JSON.stringify(displayPath(this.#entryName(h)))} of a type without data has a ${size}-byte size (readers disagree on where the next header is)`);
    }
    if (this.#pending) this.records.set(start + BLOCK, this.#pending);
    this.#pending = null;
    this.#longName = null;
    this.#skip = Math.ceil(size / BLOCK) * BLOCK;
  }
}

/** The scanner as a stream stage: forwards only the archive, up to its end marker. */
export class TarGuard extends Transform {
  readonly scanner = new TarScanner();
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let n: number;
    try {
      n = this.scanner.scan(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, n === chunk.length ? chunk : n > 0 ? chunk.subarray(0, n) : undefined);
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.scanner.end();
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb();
  }
}
