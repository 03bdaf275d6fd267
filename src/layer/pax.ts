/**
 * PAX records, byte-exact.
 *
 * tar-stream decodes PAX values as UTF-8 strings, which corrupts binary
 * xattrs such as `security.capability`. TarTap watches the same bytes on
 * their way to tar-stream, finds each PAX extended header, keeps its records
 * as Buffers, and files them under the offset tar-stream reports for the
 * entry they belong to (`header.byteOffset`, the end of its 512-byte header).
 * Being a HashStream, it also computes the sha256 of the whole stream (the
 * layer's diffId).
 */
import type tar from 'tar-stream';
import { HashStream } from '../util/hash-stream.js';
import { TsgraphError } from '../errors.js';

export type PaxRecords = Map<number, Map<string, Buffer>>;

/** Bigger PAX headers are refused: real ones are a few hundred bytes. */
export const MAX_PAX_BYTES = 1 << 20;
const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

function parseSize(h: Buffer): number {
  const field = h.subarray(124, 136);
  if (field[0]! & 0x80) {
    // base-256: big-endian with the top bit as a flag.
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text ? parseInt(text, 8) : 0;
}

/** One PAX record, "<len> <key>=<value>\n", where len counts its own digits too. */
export function encodePaxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const space = buf.indexOf(0x20, off);
    if (space < 0) break;
    const len = parseInt(buf.subarray(off, space).toString('latin1'), 10);
    if (!Number.isInteger(len) || len <= 0 || off + len > buf.length) break;
    const record = buf.subarray(space + 1, off + len - 1); // drop trailing \n
    const eq = record.indexOf(0x3d);
    if (eq > 0) out.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    off += len;
  }
  return out;
}

export class TarTap extends HashStream {
  readonly pax: PaxRecords = new Map();
  #pos = 0;
  #header = Buffer.alloc(0);
  #skip = 0; // bytes of entry data + padding still to pass
  #collect: Buffer[] | null = null; // data of a PAX header being read
  #collectLeft = 0;
  #pending: Map<string, Buffer> | null = null;

  protected override inspect(chunk: Buffer): void {
    this.#scan(chunk);
  }

  #scan(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - off);
        if (this.#collect && this.#collectLeft > 0) {
          const take = Math.min(n, this.#collectLeft);
          this.#collect.push(chunk.subarray(off, off + take));
          this.#collectLeft -= take;
          if (this.#collectLeft === 0) {
            this.#pending = parsePaxRecords(Buffer.concat(this.#collect));
            this.#collect = null;
          }
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
        continue;
      }
      const take = Math.min(BLOCK - this.#header.length, chunk.length - off);
      this.#header = Buffer.concat([this.#header, chunk.subarray(off, off + take)]);
      off += take;
      this.#pos += take;
      if (this.#header.length === BLOCK) {
        this.#onHeader(this.#header, this.#pos - BLOCK);
        this.#header = Buffer.alloc(0);
      }
    }
  }

  #onHeader(h: Buffer, start: number): void {
    if (h.equals(ZERO_BLOCK)) return; // end-of-archive blocks
    const type = String.fromCharCode(h[156]!);
    const size = parseSize(h);
    this.#skip = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      if (size > MAX_PAX_BYTES) throw new TsgraphError('TSG_INVALID_LAYER', `layer has a ${size}-byte PAX header (limit ${MAX_PAX_BYTES})`);
      this.#collect = [];
      this.#collectLeft = size;
      if (size === 0) this.#pending = new Map();
      return;
    }
    if (type === 'g' || type === 'L' || type === 'K') {
      if (size > MAX_PAX_BYTES) throw new TsgraphError('TSG_INVALID_LAYER', `layer has a ${size}-byte extended header (limit ${MAX_PAX_BYTES})`);
      return;
    }
    if (this.#pending) {
      this.pax.set(start + BLOCK, this.#pending);
      this.#pending = null;
    }
  }
}

/** SCHILY.xattr.* of an entry as Buffers: byte-exact from `records` when known. */
export function xattrsFromPax(header: tar.Header, records: PaxRecords | undefined): Array<[string, Buffer]> {
  const PREFIX = 'SCHILY.xattr.';
  const offset = (header as tar.Header & { byteOffset?: number }).byteOffset;
  const raw = offset !== undefined ? records?.get(offset) : undefined;
  const out: Array<[string, Buffer]> = [];
  if (raw) {
    for (const [k, v] of raw) if (k.startsWith(PREFIX)) out.push([k.slice(PREFIX.length), v]);
    return out;
  }
  for (const [k, v] of Object.entries(header.pax ?? {})) if (k.startsWith(PREFIX)) out.push([k.slice(PREFIX.length), Buffer.from(v, 'utf8')]);
  return out;
}
