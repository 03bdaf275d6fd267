/**
 * The second branch of a layer download: the blob's bytes, from byte 0, for
 * the layer's unpack, while the first branch writes them into the content
 * store. `stream` is what openLayerTar reads. The downloader awaits push():
 * when the unpack is slower than the network, the download waits (the
 * stream's buffer is the only one, bounded by its high-water mark).
 *
 * A source that restarts the blob from byte 0 (it ignored Range) after some
 * bytes went through makes those bytes worthless: restart() cuts the tee
 * (`cut` rejects with BlobRestarted) and `restarted` tells the unpack to start over from the
 * stored blob once the download committed it.
 */
import { PassThrough, type Readable } from 'node:stream';

/** The tee was cut because the source restarted the blob. */
export class BlobRestarted extends Error {
  constructor() {
    super('the source restarted the blob from byte 0');
  }
}

export class BlobTee {
  readonly stream = new PassThrough({ highWaterMark: 1 << 20 });
  #fed = 0;
  #detached = false;
  restarted = false;
  /** Why the download failed (the unpack reports it rather than its cut tar). */
  error: unknown;

  /** Rejects when the tee is cut (the download failed, or the source restarted the blob). */
  readonly cut: Promise<never>;
  #cut!: (err: unknown) => void;

  constructor() {
    this.cut = new Promise<never>((_, reject) => {
      this.#cut = reject;
    });
    this.cut.catch(() => {}); // raced by the unpack; nobody may be listening
    // The unpack's pipeline reports the stream's errors; one that comes after it let go must not crash the process.
    this.stream.on('error', () => {});
  }

  /** Bytes handed to the unpack so far. */
  get fed(): number {
    return this.#fed;
  }

  /** Hands a chunk to the unpack; resolves once the stream can take more (or is gone). */
  async push(chunk: Buffer, signal?: AbortSignal): Promise<void> {
    if (this.#detached) return;
    if (this.stream.destroyed) {
      // The unpack failed: its error fails the pull; the download has no reader left.
      this.#detached = true;
      return;
    }
    this.#fed += chunk.length;
    if (this.stream.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
      // The caller checks the signal itself after this returns.
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Feeds a whole readable (the stored blob, or what an earlier attempt left in the ingest). */
  async feed(input: Readable, signal?: AbortSignal): Promise<void> {
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        signal?.throwIfAborted();
        await this.push(chunk, signal);
        if (this.#detached) break;
      }
    } finally {
      input.destroy();
    }
  }

  /** The blob is complete. */
  end(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.stream.end();
  }

  /**
   * The download failed: the unpack fails with it (through `cut`, which it
   * races). The stream itself is ended, not destroyed: a decompressor that
   * has not attached to it yet (a worker still starting) would never hear of
   * a destroy, and would wait forever; an end it reads.
   */
  fail(err: unknown): void {
    if (this.restarted || this.error !== undefined) return;
    this.error = err ?? new Error('download failed');
    this.#detached = true;
    this.#cut(this.error);
    this.#close();
  }

  #close(): void {
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }

  /** The source started over from byte 0: cut the stream if the unpack saw any byte. */
  restart(): void {
    if (this.#fed === 0 || this.#detached) return;
    this.restarted = true;
    this.#detached = true;
    this.#cut(new BlobRestarted());
    this.#close();
  }
}
