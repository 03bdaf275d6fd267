/**
 * Layer decompression by media type, checked against the stream's magic
 * bytes so a mislabelled blob fails clearly instead of unpacking garbage.
 */
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Compression } from '../oci/media-types.js';
import { TsgraphError } from '../errors.js';
import { zstdNapi } from '../native.js';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

export function sniffCompression(head: Buffer): Compression | undefined {
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return 'gzip';
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) return 'zstd';
  return undefined;
}

/** Checks the first bytes against the declared compression, then passes everything on. */
class MagicCheck extends Transform {
  #checked = false;
  #head = Buffer.alloc(0);
  constructor(private readonly declared: Compression) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.#checked) return cb(null, chunk);
    this.#head = Buffer.concat([this.#head, chunk]);
    if (this.#head.length < 4) return cb();
    const err = this.#verify();
    if (err) return cb(err);
    this.#checked = true;
    cb(null, this.#head);
  }
  override _flush(cb: TransformCallback): void {
    if (!this.#checked && this.#head.length > 0) {
      const err = this.#verify();
      if (err) return cb(err);
      this.push(this.#head);
    }
    cb();
  }
  #verify(): Error | undefined {
    const actual = sniffCompression(this.#head);
    const expected = this.declared === 'none' ? undefined : this.declared;
    if (actual !== expected) {
      return new TsgraphError('TSG_INVALID_LAYER', `layer declared as ${this.declared} but its bytes look like ${actual ?? 'an uncompressed tar'}`);
    }
    return undefined;
  }
}

/** A pass-through that refuses a blob whose first bytes are not what `compression` says. */
export function magicCheck(compression: Compression): NodeJS.ReadWriteStream {
  return new MagicCheck(compression);
}

/** zlib's output chunk: 16 KiB by default, i.e. ~20k round trips to the pool for 300 MB. */
export const GUNZIP_CHUNK = 256 << 10;

/** Streams that turn a layer blob into its tar: [magic check, decompressor]. */
export function decompressionStages(compression: Compression): Array<NodeJS.ReadWriteStream> {
  const check = new MagicCheck(compression);
  if (compression === 'gzip') return [check, createGunzip({ chunkSize: GUNZIP_CHUNK })];
  if (compression === 'zstd') return [check, zstdStage()];
  return [check, new PassThrough()];
}

/**
 * zstd-napi loads on first use (src/native.ts): a package without its binding
 * still does gzip. When it cannot load, the stage fails like a bad blob does,
 * through the pipeline (which then tears down the blob and the tar), not by
 * a throw while the pipeline is being built.
 */
function zstdStage(): NodeJS.ReadWriteStream {
  try {
    return new (zstdNapi().DecompressStream)() as unknown as NodeJS.ReadWriteStream;
  } catch (err) {
    const failed = new PassThrough();
    process.nextTick(() => failed.destroy(err as Error));
    return failed;
  }
}
