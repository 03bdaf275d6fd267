/**
 * The content store: blobs addressed by sha256 under `<root>/content`.
 *
 *   blobs/sha256/<hex>      committed, verified, read-only (0444)
 *   ingest/<sha256(ref)>/   writes in progress: data, ref, expected, total, startedat
 *
 * Every blob enters through an IngestWriter, which verifies size and digest
 * before the rename that makes it visible; nothing unverified is ever under
 * blobs/. Writers for one ref are serialised by a flock in `<root>/locks`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { type Digest, hexOf, isDigest, sha256, sha256Hex } from '../digest.js';
import { NotFoundError } from '../errors.js';
import { acquireLock } from '../store/lock.js';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { digestOfHasher, newHasher } from '../digest.js';
import { fsyncDir } from '../util/fs-atomic.js';
import { writeAll } from '../util/fs-helpers.js';
import { type BlobInfo, type ExpectedBlob, IngestWriter } from './ingest.js';

export type { BlobInfo, ExpectedBlob } from './ingest.js';
export { IngestWriter } from './ingest.js';

export interface IngestStatus {
  /** Directory name under ingest/. */
  key: string;
  ref: string;
  /** Last time its data was written (ms since epoch). */
  touchedMs: number;
  expected: string | undefined;
  offset: number;
  total: number | undefined;
  startedAt: string | undefined;
}

export class ContentStore {
  readonly dir: string;
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly lockDir: string;

  constructor(root: string) {
    this.dir = join(root, 'content');
    this.blobsDir = join(this.dir, 'blobs', 'sha256');
    this.ingestDir = join(this.dir, 'ingest');
    this.lockDir = join(root, 'locks');
    fs.mkdirSync(this.blobsDir, { recursive: true });
    fs.mkdirSync(this.ingestDir, { recursive: true });
  }

  blobPath(digest: Digest): string {
    return join(this.blobsDir, hexOf(digest));
  }

  /** Size of a committed blob, or undefined when absent. */
  info(digest: Digest): BlobInfo | undefined {
    try {
      const st = fs.statSync(this.blobPath(digest));
      return { digest, size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  has(digest: Digest): boolean {
    return this.info(digest) !== undefined;
  }

  /** A stream of a committed blob from `offset`. */
  reader(digest: Digest, offset = 0): fs.ReadStream {
    if (!this.has(digest)) throw this.#missing(digest);
    return fs.createReadStream(this.blobPath(digest), { start: offset });
  }

  /** Reads a whole (small) blob into memory; refuses blobs over maxBytes. */
  readBlob(digest: Digest, maxBytes = 16 << 20): Buffer {
    const info = this.info(digest);
    if (!info) throw this.#missing(digest);
    if (info.size > maxBytes) throw new Error(`blob ${digest} is ${info.size} bytes, more than ${maxBytes} allowed here`);
    return fs.readFileSync(this.blobPath(digest));
  }

  /**
   * Opens (or resumes) the ingest for `ref`. Waits for another process writing
   * the same ref. Check `writer.offset` for where to resume.
   */
  async writer(ref: string, expected: ExpectedBlob, options: { signal?: AbortSignal } = {}): Promise<IngestWriter> {
    const key = sha256Hex(ref);
    const lock = await acquireLock(this.lockDir, `ingest-${key}`, { signal: options.signal, timeoutMs: 10 * 60_000 });
    try {
      return new IngestWriter(ref, expected, {
        dir: join(this.ingestDir, key),
        blobPath: this.blobPath(expected.digest),
        blobsDir: this.blobsDir,
      }, lock);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /** Stores in-memory bytes (manifests, configs) after checking them. */
  async writeBlob(bytes: Uint8Array, expected?: ExpectedBlob): Promise<BlobInfo> {
    const want = expected ?? { digest: sha256(bytes), size: bytes.length };
    const existing = this.info(want.digest);
    if (existing) return existing;
    const w = await this.writer(`mem-${want.digest}`, want);
    if (w.offset > 0) w.reset();
    w.write(bytes);
    return w.commit();
  }

  /**
   * A writer for content whose digest is known only at the end (a layer
   * being generated): bytes go to a fresh ingest dir and commit() names the
   * blob by what was written.
   */
  tempWriter(): TempBlobWriter {
    const dir = join(this.ingestDir, `tmp-${randomBytes(8).toString('hex')}`);
    fs.mkdirSync(dir, { recursive: true });
    return new TempBlobWriter(dir, this.blobsDir);
  }

  /**
   * Deletes ingest `key` unless a writer holds it (a pull in progress).
   * Returns false when it was held.
   */
  async removeIngest(key: string): Promise<boolean> {
    if (key.startsWith('tmp-')) {
      fs.rmSync(join(this.ingestDir, key), { recursive: true, force: true });
      return true;
    }
    const lock = await acquireLock(this.lockDir, `ingest-${key}`, { timeoutMs: 0 }).catch(() => undefined);
    if (!lock) return false;
    try {
      fs.rmSync(join(this.ingestDir, key), { recursive: true, force: true });
      return true;
    } finally {
      lock.release();
    }
  }

  /** Removes a committed blob. Returns false if it was not there. */
  delete(digest: Digest): boolean {
    try {
      fs.rmSync(this.blobPath(digest));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every committed blob. */
  *walk(): Generator<BlobInfo> {
    for (const name of fs.readdirSync(this.blobsDir)) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      const info = this.info(digest);
      if (info) yield info;
    }
  }

  /** Writes in progress or left by a crash. */
  ingests(): IngestStatus[] {
    const out: IngestStatus[] = [];
    for (const key of fs.readdirSync(this.ingestDir)) {
      const dir = join(this.ingestDir, key);
      const read = (f: string) => {
        try {
          return fs.readFileSync(join(dir, f), 'utf8');
        } catch {
          return undefined;
        }
      };
      let offset = 0;
      let touchedMs = 0;
      try {
        const st = fs.statSync(join(dir, 'data'));
        offset = st.size;
        touchedMs = st.mtimeMs;
      } catch {
        touchedMs = fs.statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? 0;
      }
      const total = read('total');
      out.push({
        key,
        touchedMs,
        ref: read('ref') ?? key,
        expected: read('expected'),
        offset,
        total: total ? Number(total) : undefined,
        startedAt: read('startedat'),
      });
    }
    return out;
  }

  #missing(digest: Digest): NotFoundError {
    return new NotFoundError('TSG_BLOB_NOT_FOUND', `blob ${digest} is not in the content store`, { data: { digest } });
  }
}

/** Writable side of a blob whose digest comes out of its bytes. */
export class TempBlobWriter extends Writable {
  #fd: number;
  #hash = newHasher();
  size = 0;
  constructor(
    private readonly dir: string,
    private readonly blobsDir: string,
  ) {
    super();
    fs.writeFileSync(join(dir, 'ref'), 'generated');
    this.#fd = fs.openSync(join(dir, 'data'), 'w', 0o600);
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      writeAll(this.#fd, chunk);
      this.#hash.update(chunk);
      this.size += chunk.length;
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
  /** After the stream finished: fsync, name by digest, move into blobs/. */
  commit(): BlobInfo {
    fs.fsyncSync(this.#fd);
    fs.fchmodSync(this.#fd, 0o444);
    fs.closeSync(this.#fd);
    const digest = digestOfHasher(this.#hash);
    const target = join(this.blobsDir, digest.slice(7));
    if (!fs.existsSync(target)) {
      fs.renameSync(join(this.dir, 'data'), target);
      fsyncDir(this.blobsDir);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    return { digest, size: this.size };
  }
  /** Drops everything written. */
  discard(): void {
    try {
      fs.closeSync(this.#fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
