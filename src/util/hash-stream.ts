/**
 * A pass-through that computes the sha256 (and size) of everything that
 * flows through it. `inspect` lets a subclass look at each chunk on the way
 * (TarTap reads tar headers); throwing from it fails the stream.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { type Digest, digestOfHasher, newHasher } from '../digest.js';

export class HashStream extends Transform {
  #hash = newHasher();
  #digest: Digest | undefined;
  size = 0;

  protected inspect(_chunk: Buffer): void {}

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.size += chunk.length;
    try {
      this.inspect(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#digest = digestOfHasher(this.#hash);
    cb();
  }

  /** sha256 of every byte that went through (valid once the stream ended). */
  get digest(): Digest {
    if (!this.#digest) throw new Error('HashStream: the stream has not ended');
    return this.#digest;
  }
}
