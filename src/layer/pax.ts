/**
 * PAX records, byte-exact, and the tap every layer tar goes through.
 *
 * tar-stream decodes PAX values as UTF-8 strings, which corrupts binary
 * xattrs such as `security.capability` and non-UTF-8 names. TarTap watches
 * the bytes on their way to tar-stream with a TarScanner (tar-scan.ts): it
 * keeps each entry's PAX records as Buffers under the offset tar-stream
 * reports for the entry, checks every header strictly, and forwards the
 * archive only up to its end-of-archive marker. Being a HashStream, it still
 * hashes every byte as stored, trailer included (the layer's diffId).
 */
import type { TransformCallback } from 'node:stream';
import { HashStream } from '../util/hash-stream.js';
import { type PaxRecords, TarScanner, parsePaxRecords, MAX_PAX_BYTES } from './tar-scan.js';

export { type PaxRecords, parsePaxRecords, MAX_PAX_BYTES };

/** One PAX record, "<len> <key>=<value>\n", where len counts its own digits too. */
export function encodePaxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

export class TarTap extends HashStream {
  readonly #scanner: TarScanner;
  readonly pax: PaxRecords;
  #forward = 0;

  /** `scanner`: the caller's, when it must hold the PAX records before the stream starts. */
  constructor(scanner = new TarScanner()) {
    super();
    this.#scanner = scanner;
    this.pax = scanner.records;
  }

  protected override inspect(chunk: Buffer): void {
    this.#forward = this.#scanner.scan(chunk);
  }

  override _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void {
    super._transform(chunk, enc, (err, data) => {
      if (err) return cb(err);
      const n = this.#forward;
      // Hashed in full; only the archive itself (up to its end marker) goes on.
      cb(null, n === chunk.length ? data : n > 0 ? (data as Buffer).subarray(0, n) : undefined);
    });
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.#scanner.end();
    } catch (err) {
      cb(err as Error);
      return;
    }
    super._flush(cb);
  }
}

/** SCHILY.xattr.* records of an entry as [name, value] Buffers, byte-exact. */
export function xattrsOf(records: Map<string, Buffer> | undefined): Array<[string, Buffer]> {
  const PREFIX = 'SCHILY.xattr.';
  const out: Array<[string, Buffer]> = [];
  if (records) for (const [k, v] of records) if (k.startsWith(PREFIX)) out.push([k.slice(PREFIX.length), v]);
  return out;
}
