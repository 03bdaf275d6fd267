/**
 * One blob being written into the content store.
 *
 * Bytes land in `ingest/<sha256(ref)>/data`; the sha256 is computed while
 * writing. `commit()` fsyncs, checks size and digest against the descriptor,
 * and only then renames the file to `blobs/sha256/<hex>` (read-only). A
 * mismatch deletes the ingest: a tampered blob stores nothing. A writer that is
 * closed without commit (or a process that dies) leaves the ingest in place so
 * the next writer for the same ref resumes at its offset.
 */
import * as fs from 'node:fs';
import type { Hash } from 'node:crypto';
import { join } from 'node:path';
import { type Digest, digestOfHasher, newHasher } from '../digest.js';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { IntegrityError, throwIfAborted } from '../errors.js';
import { fsyncDir } from '../util/fs-atomic.js';
import { writeAll } from '../util/fs-helpers.js';
import type { FileLock } from '../store/lock.js';

/** What a blob being written must turn out to be (checked at commit). */
export interface ExpectedBlob {
  digest: Digest;
  /** Size from the descriptor; when known, a single byte more fails at once. */
  size?: number | undefined;
}

/** A stored blob: its digest and size in bytes. */
export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** Paths a writer needs; given by ContentStore. */
export interface IngestPaths {
  dir: string;
  blobPath: string;
  blobsDir: string;
}

/** A resumable, verified blob write: bytes go to `content/ingest/<key>/data`; commit() checks size and digest, then renames into place. */
export class IngestWriter {
  #fd: number | undefined;
  #hash: Hash;
  #offset = 0;
  #done = false;

  /** @internal Use ContentStore.writer(). */
  constructor(
    readonly ref: string,
    readonly expected: ExpectedBlob,
    private readonly paths: IngestPaths,
    private readonly lock: FileLock,
  ) {
    this.#hash = newHasher();
    const dataPath = join(paths.dir, 'data');
    fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    const total = readText(join(paths.dir, 'total'));
    const sameTarget = readText(join(paths.dir, 'expected')) === expected.digest;
    if (!sameTarget || (expected.size !== undefined && total !== String(expected.size))) {
      // Stale ingest for another target under this ref: start over.
      fs.rmSync(dataPath, { force: true });
    }
    this.#fd = fs.openSync(dataPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.#sameTarget = sameTarget;
  }

  #sameTarget: boolean;

  /**
   * @internal ContentStore.writer() calls this once: hashes what a previous
   * writer left (so we can append to it) and records the target.
   */
  async resume(signal?: AbortSignal): Promise<void> {
    this.#offset = await this.#rehash(signal);
    const { expected, ref } = this;
    if (expected.size !== undefined && this.#offset > expected.size) this.reset();
    if (!this.#sameTarget || this.#offset === 0) {
      const dir = this.paths.dir;
      fs.writeFileSync(join(dir, 'ref'), ref);
      fs.writeFileSync(join(dir, 'expected'), expected.digest);
      fs.writeFileSync(join(dir, 'total'), expected.size === undefined ? '' : String(expected.size));
      fs.writeFileSync(join(dir, 'startedat'), new Date().toISOString());
    }
  }

  /** Bytes already written (and hashed); where a resumed download starts. */
  get offset(): number {
    return this.#offset;
  }

  // Feeds what a previous writer left into the hash so we can append to it.
  // A partial layer can be gigabytes: yield to the event loop every 64 MiB so
  // a signal is handled (and the abort honoured) instead of waiting for the end.
  async #rehash(signal?: AbortSignal): Promise<number> {
    const fd = this.#fd!;
    const buf = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    for (let i = 1; ; i++) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      this.#hash.update(buf.subarray(0, n));
      pos += n;
      if (i % 64 === 0) {
        await yieldToLoop();
        throwIfAborted(signal);
      }
    }
    return pos;
  }

  /** Appends bytes. Throws TSG_SIZE_MISMATCH (and drops the ingest) past the expected size. */
  write(chunk: Uint8Array): void {
    if (this.#fd === undefined) throw new Error('ingest writer is closed');
    if (this.expected.size !== undefined && this.#offset + chunk.length > this.expected.size) {
      const got = this.#offset + chunk.length;
      this.abort();
      throw new IntegrityError('TSG_SIZE_MISMATCH', `blob ${this.expected.digest} is larger than its descriptor says (${got}+ > ${this.expected.size} bytes)`, {
        data: { digest: this.expected.digest, expected: this.expected.size, actual: got },
      });
    }
    writeAll(this.#fd, chunk, this.#offset);
    this.#hash.update(chunk);
    this.#offset += chunk.length;
  }

  /** The bytes written so far, from byte 0 (a resumed layer download feeds them to its unpack). */
  readWritten(): fs.ReadStream {
    if (this.#fd === undefined) throw new Error('ingest writer is closed');
    // Its own fd: the writer's stays open (and positioned writes do not move a shared offset).
    return fs.createReadStream(join(this.paths.dir, 'data'), { start: 0, end: Math.max(0, this.#offset - 1), highWaterMark: 1 << 20 });
  }

  /** Drops what was written (the server ignored our Range and sent everything). */
  reset(): void {
    if (this.#fd === undefined) throw new Error('ingest writer is closed');
    fs.ftruncateSync(this.#fd, 0);
    this.#hash = newHasher();
    this.#offset = 0;
  }

  /**
   * Verifies and moves the blob into place. On mismatch the ingest is removed
   * and TSG_SIZE_MISMATCH / TSG_DIGEST_MISMATCH is thrown.
   */
  commit(): BlobInfo {
    if (this.#fd === undefined || this.#done) throw new Error('ingest writer is closed');
    const { digest, size } = this.expected;
    if (size !== undefined && this.#offset !== size) {
      const actual = this.#offset;
      this.abort();
      throw new IntegrityError('TSG_SIZE_MISMATCH', `blob ${digest} is ${actual} bytes, its descriptor says ${size}`, {
        data: { digest, expected: size, actual },
      });
    }
    const actual = digestOfHasher(this.#hash);
    if (actual !== digest) {
      this.abort();
      throw new IntegrityError('TSG_DIGEST_MISMATCH', `blob content does not match its digest: expected ${digest}, got ${actual}`, {
        data: { expected: digest, actual },
      });
    }
    const fd = this.#fd;
    fs.fsyncSync(fd);
    // Read-only; private through the 0700 dirs above it.
    fs.fchmodSync(fd, 0o444);
    fs.closeSync(fd);
    this.#fd = undefined;
    const info = { digest, size: this.#offset };
    if (!fs.existsSync(this.paths.blobPath)) {
      fs.renameSync(join(this.paths.dir, 'data'), this.paths.blobPath);
      fsyncDir(this.paths.blobsDir);
    }
    this.#finish(true);
    return info;
  }

  /** Keeps the partial data for a later resume and lets go of the lock. */
  close(): void {
    if (this.#done) return;
    if (this.#fd !== undefined) {
      fs.closeSync(this.#fd);
      this.#fd = undefined;
    }
    fs.writeFileSync(join(this.paths.dir, 'updatedat'), new Date().toISOString());
    this.#finish(false);
  }

  /** Deletes the partial data and lets go of the lock. */
  abort(): void {
    if (this.#done) return;
    if (this.#fd !== undefined) {
      fs.closeSync(this.#fd);
      this.#fd = undefined;
    }
    this.#finish(true);
  }

  #finish(removeIngest: boolean): void {
    this.#done = true;
    if (removeIngest) fs.rmSync(this.paths.dir, { recursive: true, force: true });
    this.lock.release();
  }
}

function readText(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
