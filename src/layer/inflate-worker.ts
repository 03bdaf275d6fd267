/**
 * Worker thread of the inflate pool (inflate-pool.ts): decompresses one layer
 * blob at a time and hashes what comes out (the diffId), so neither costs the
 * main thread, which only scans tar headers and applies entries.
 *
 * Protocol (one job at a time; every message carries the job id, stale ones are ignored):
 *   main → worker  start{compression}  data{buf}  end  ack (one output credit back)
 *   worker → main  ready  consumed (one input credit back)  out{buf}  done{digest,size}  error{...}
 * Backpressure both ways: main sends at most IN_CREDITS input chunks the worker
 * has not taken, the worker posts at most OUT_CREDITS output batches main has
 * not acked. Output batches are fresh ArrayBuffers, transferred, never reused.
 */
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parentPort } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';
import { TsgraphError } from '../errors.js';
import { zstdBinding } from '../native.js';
import type { Compression } from '../oci/media-types.js';
import { GUNZIP_CHUNK, magicCheck } from './compression.js';

/** Output credits: batches posted but not yet acked by main. */
export const OUT_CREDITS = 4;
/** Size of one output batch. 256 KiB: 1200 messages for 300 MB, each a small fraction of a ms. */
export const OUT_BATCH = 256 << 10;

export type ToWorker =
  | { type: 'start'; id: number; compression: Compression }
  | { type: 'data'; id: number; buf: ArrayBuffer }
  | { type: 'end'; id: number }
  | { type: 'ack'; id: number }
  | { type: 'abort'; id: number };

export type FromWorker =
  | { type: 'ready'; id: number }
  | { type: 'consumed'; id: number }
  | { type: 'out'; id: number; buf: ArrayBuffer; length: number }
  | { type: 'done'; id: number; digest: string; size: number }
  | { type: 'error'; id: number; message: string; tsgCode?: string; code?: string };

class Job {
  readonly #source: Readable;
  #owedConsumed = 0; // input chunks taken while the source was full: credit them on read
  #credits = OUT_CREDITS;
  #wake: (() => void) | undefined;
  #batch = Buffer.allocUnsafeSlow(OUT_BATCH);
  #fill = 0;
  readonly #hash = createHash('sha256');
  #size = 0;
  #aborted = false;

  constructor(
    readonly id: number,
    compression: Compression,
    private readonly postRaw: (msg: FromWorker, transfer?: ArrayBuffer[]) => void,
  ) {
    this.#source = new Readable({
      highWaterMark: 256 << 10,
      read: () => {
        for (; this.#owedConsumed > 0; this.#owedConsumed--) this.post({ type: 'consumed', id });
      },
    });
    // The magic check, then: zstd straight into the output batches (no per-chunk buffers),
    // gzip through zlib with big output chunks, none as is.
    const stages: NodeJS.ReadWriteStream[] = [magicCheck(compression)];
    if (compression === 'gzip') stages.push(createGunzip({ chunkSize: GUNZIP_CHUNK }));
    const sink = compression === 'zstd' ? this.#zstdSink() : this.#copySink();
    pipeline([this.#source, ...stages, sink] as unknown as [Readable, Writable]).then(
      () => this.post({ type: 'done', id, digest: `sha256:${this.#hash.digest('hex')}`, size: this.#size }),
      (err: unknown) => {
        const e = err as { message?: string; code?: unknown };
        this.post({
          type: 'error',
          id,
          message: String(e?.message ?? err),
          ...(err instanceof TsgraphError ? { tsgCode: err.code } : {}),
          ...(typeof e?.code === 'string' ? { code: e.code } : {}),
        });
      },
    );
    this.post({ type: 'ready', id });
  }

  private post(msg: FromWorker, transfer?: ArrayBuffer[]): void {
    if (!this.#aborted) this.postRaw(msg, transfer);
  }

  data(buf: ArrayBuffer): void {
    if (this.#source.push(Buffer.from(buf))) this.post({ type: 'consumed', id: this.id });
    else this.#owedConsumed++;
  }

  end(): void {
    this.#source.push(null);
  }

  /** Main gave up on this job: stop reading and never post for it again. */
  abort(): void {
    this.#aborted = true;
    this.#source.destroy();
    this.ack(); // a flush waiting for credit wakes up and sees the abort
  }

  ack(): void {
    this.#credits++;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Hashes and copies each decompressed chunk into the batches (gzip: zlib reuses its buffers). */
  #copySink(): Writable {
    return new Writable({
      highWaterMark: OUT_BATCH,
      write: (chunk: Buffer, _enc, cb) => {
        this.#hash.update(chunk);
        this.#size += chunk.length;
        this.#append(chunk).then(() => cb(), cb);
      },
      final: (cb) => void this.#flush().then(() => cb(), cb),
    });
  }

  /** Decompresses zstd frames straight into the output batch, as zstd-napi's DecompressStream would. */
  #zstdSink(): Writable {
    // zstd-napi loads on the first chunk (src/native.ts), inside the pipeline: a package
    // without its binding fails this job with TSG_UNSUPPORTED, and gzip jobs never load it.
    let dctx: InstanceType<ReturnType<typeof zstdBinding>['DCtx']> | undefined;
    let inFrame = false;
    const decompress = async (chunk: Buffer): Promise<void> => {
      dctx ??= new (zstdBinding().DCtx)();
      let src = chunk;
      for (;;) {
        const [ret, produced, consumed] = dctx.decompressStream(this.#batch.subarray(this.#fill), src);
        if (produced > 0) {
          this.#hash.update(this.#batch.subarray(this.#fill, this.#fill + produced));
          this.#fill += produced;
          this.#size += produced;
        }
        src = src.subarray(consumed);
        inFrame = ret !== 0;
        if (this.#fill === OUT_BATCH) await this.#flush(); // may hold more: go round again
        else if (src.length === 0) return;
        else if (produced === 0 && consumed === 0) throw new Error('zstd made no progress');
      }
    };
    return new Writable({
      highWaterMark: OUT_BATCH,
      write: (chunk: Buffer, _enc, cb) => void decompress(chunk).then(() => cb(), cb),
      final: (cb) => {
        if (inFrame) return cb(new Error('Stream ended in middle of compressed data frame'));
        void this.#flush().then(() => cb(), cb);
      },
    });
  }

  async #append(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const n = chunk.copy(this.#batch, this.#fill, off);
      this.#fill += n;
      off += n;
      if (this.#fill === OUT_BATCH) await this.#flush();
    }
  }

  /** Posts the batch (transferring it) once main has room for it. */
  async #flush(): Promise<void> {
    if (this.#fill === 0) return;
    while (this.#credits === 0 && !this.#aborted) await new Promise<void>((resolve) => (this.#wake = resolve));
    if (this.#aborted) throw new Error('aborted');
    this.#credits--;
    const buf = this.#batch.buffer as ArrayBuffer;
    const length = this.#fill;
    this.#batch = Buffer.allocUnsafeSlow(OUT_BATCH);
    this.#fill = 0;
    this.post({ type: 'out', id: this.id, buf, length }, [buf]);
  }
}

const port = parentPort;
if (port) {
  let job: Job | undefined;
  const post = (msg: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(msg, transfer);
  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'start') {
      job = new Job(msg.id, msg.compression, post);
      return;
    }
    if (!job || msg.id !== job.id) return;
    if (msg.type === 'data') job.data(msg.buf);
    else if (msg.type === 'end') job.end();
    else if (msg.type === 'ack') job.ack();
    else if (msg.type === 'abort') {
      job.abort();
      job = undefined;
    }
  });
}
