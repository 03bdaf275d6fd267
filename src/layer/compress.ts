/**
 * Compression stages for layers tsgraph writes (commit, `diff -o`).
 *
 * Both keep compression off the main thread, so it overlaps the tar
 * generator and the diffId hash that run there (measured in
 * docs/benchmarks.md, bench/commit-bench.ts):
 *  - gzip: pigz's scheme. The tar is cut into fixed blocks; each block is
 *    raw-deflated on the libuv pool (several in flight) with the previous
 *    block's last 32 KiB as its preset dictionary, ended with a sync flush
 *    (byte-aligned, not final) — the last one with a final block. The
 *    pieces joined behind one gzip header, with the CRC-32 and size of the
 *    whole in one trailer, are ONE ordinary gzip member: what `gzip -6`
 *    would decode, every reader (GNU gzip, Go's compress/gzip, zlib) reads it,
 *    and it compresses as well as one stream (the dictionary carries the
 *    window across the cut). Fixed blocks: the same tar gives the same blob.
 *  - zstd: level 3 (the zstd CLI's and containerd's default) with one
 *    zstd worker thread: zstd's own multithreading compresses while the
 *    main thread keeps generating. Standard frames.
 */
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Compression } from '../oci/media-types.js';
import { zstdNapi } from '../native.js';

/** gzip level docker, podman (containers/image) and `gzip` use by default. */
export const GZIP_LEVEL = 6;
/** zstd level of the zstd CLI, containerd and podman. */
export const ZSTD_LEVEL = 3;

const BLOCK = 1 << 20;
const WINDOW = 32 << 10;
/**
 * Blocks being deflated at once: enough to keep every core busy, but one
 * libuv pool thread short of the pool, so the generator's file reads (same
 * pool) never queue behind a full pool of deflates.
 */
const IN_FLIGHT = Math.max(2, Math.min(availableParallelism() + 1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1));

const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]); // deflate, no flags, mtime 0, unix

/** One gzip member, deflated in parallel blocks on the libuv pool (see above). */
export class ParallelGzip extends Transform {
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #dict: Buffer | undefined;
  #crc = 0;
  #size = 0;
  /** Blocks in flight, in order; each settles to its deflated bytes. */
  #queue: Array<Promise<Buffer>> = [];
  #headerSent = false;

  constructor(private readonly level = GZIP_LEVEL) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#crc = zlib.crc32(chunk, this.#crc);
    this.#size += chunk.length;
    this.#pending.push(chunk);
    this.#pendingLen += chunk.length;
    if (this.#pendingLen < BLOCK) return cb();
    // One block after another: each submit may wait for the oldest in flight.
    const loop = async () => {
      while (this.#pendingLen >= BLOCK) await this.#submit(this.#take(BLOCK), false);
    };
    loop().then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.#submit(this.#take(this.#pendingLen), true)
      .then(() => this.#drain(0))
      .then(() => {
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(this.#crc >>> 0, 0);
        trailer.writeUInt32LE(this.#size % 0x1_0000_0000, 4);
        this.push(trailer);
        cb();
      }, cb);
  }

  /** The next `n` pending bytes as one buffer. */
  #take(n: number): Buffer {
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingLen);
    const block = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#pending = rest.length ? [rest] : [];
    this.#pendingLen = rest.length;
    return block;
  }

  /** Queues one block; waits (pushing finished blocks in order) while too many are in flight. */
  async #submit(block: Buffer, last: boolean): Promise<void> {
    const dictionary = this.#dict;
    // Copied: the block may be a view of a buffer the writer reuses.
    this.#dict = Buffer.from(block.length >= WINDOW ? block.subarray(block.length - WINDOW) : Buffer.concat([this.#dict ?? Buffer.alloc(0), block]).subarray(-WINDOW));
    const opts: zlib.ZlibOptions = { level: this.level, ...(dictionary ? { dictionary } : {}) };
    if (!last) opts.finishFlush = zlib.constants.Z_SYNC_FLUSH;
    const job = new Promise<Buffer>((resolve, reject) => zlib.deflateRaw(block, opts, (err, out) => (err ? reject(err) : resolve(out))));
    job.catch(() => {}); // awaited in order by #drain; not unhandled if the stream dies first
    this.#queue.push(job);
    await this.#drain(IN_FLIGHT - 1);
  }

  /** Pushes finished blocks, in order, until at most `keep` are in flight. */
  async #drain(keep: number): Promise<void> {
    while (this.#queue.length > keep) {
      const out = await this.#queue.shift()!;
      if (!this.#headerSent) {
        this.#headerSent = true;
        this.push(GZIP_HEADER);
      }
      this.push(out);
    }
  }
}

/** The stage that compresses a layer tar into a blob (a pass-through for `none`). */
export function compressionStage(compression: Exclude<Compression, 'none'>): NodeJS.ReadWriteStream {
  if (compression === 'gzip') return new ParallelGzip();
  return new (zstdNapi().CompressStream)({ compressionLevel: ZSTD_LEVEL, nbWorkers: 1 }) as unknown as NodeJS.ReadWriteStream;
}
