/**
 * The content store: blobs addressed by sha256 under `<root>/content`.
 *
 *   blobs/sha256/<hex>      committed, verified, read-only (0444; private through the 0700 dirs above)
 *   ingest/<sha256(ref)>/   writes in progress: data, ref, expected, total, startedat
 *   ingest/tmp-<random>/    a generated layer (commit) whose digest is known only at the end
 *
 * Every blob enters through an IngestWriter, which verifies size and digest
 * before the rename that makes it visible; nothing unverified is ever under
 * blobs/. Writers for one ref are serialised by a flock in `<root>/locks`.
 *
 * Temp ingests: a `tmp-*` ingest (and a `mem-*` one: manifests and configs
 * written from memory, often with a timestamp inside) can never be resumed;
 * the writer holds the flock `ingest-<key>` for as long as it lives, so an
 * ingest of that kind whose lock is free belongs to a dead process and is
 * reclaimed: by gc (reported with its bytes) and, cheaply, by the next
 * writer this store opens.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { type Digest, hexOf, isDigest, sha256, sha256Hex } from '../digest.js';
import { NotFoundError } from '../errors.js';
import { acquireLock, FileLock } from '../store/lock.js';
import { native } from '../native.js';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { digestOfHasher, newHasher } from '../digest.js';
import { fsyncDir } from '../util/fs-atomic.js';
import { mkdirBounded } from '../util/private-root.js';
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
  /** A temp (`tmp-*`) or in-memory (`mem-*`) ingest: never resumed, only its live writer needs it. */
  temporary: boolean;
}

/** Ref written into a temp ingest (TempBlobWriter). */
const GENERATED_REF = 'generated';

function isTemporary(key: string, ref: string | undefined): boolean {
  return key.startsWith('tmp-') || ref === GENERATED_REF || (ref?.startsWith('mem-') ?? false);
}

/**
 * Tries `locks/<name>.lock` once, without waiting (a sync LOCK_NB flock):
 * the lock, or undefined when a live process holds it.
 */
function tryLockNow(lockDir: string, name: string): FileLock | undefined {
  const path = join(lockDir, `${name}.lock`);
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  const n = native();
  let ok = false;
  try {
    ok = n.flock(fd, n.lockConstants.LOCK_EX | n.lockConstants.LOCK_NB);
  } finally {
    if (!ok) fs.closeSync(fd);
  }
  return ok ? new FileLock(path, fd) : undefined;
}

/** The content store under `<root>/content`: blobs by digest, verified on write, and resumable ingests. */
export class ContentStore {
  readonly dir: string;
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly lockDir: string;
  #reclaimed = false;

  constructor(root: string) {
    this.dir = join(root, 'content');
    this.blobsDir = join(this.dir, 'blobs', 'sha256');
    this.ingestDir = join(this.dir, 'ingest');
    this.lockDir = join(root, 'locks');
    // 0700: the content of private images must not be readable by other users (chmod: umask cannot loosen it).
    // mkdirBounded, not a recursive mkdir: that one spins forever on some procfs paths.
    for (const d of [this.dir, join(this.dir, 'blobs'), this.blobsDir, this.ingestDir]) {
      if (!fs.existsSync(d)) mkdirBounded(d, 'the content store');
    }
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
    this.#reclaimOnce();
    const key = sha256Hex(ref);
    const lock = await acquireLock(this.lockDir, `ingest-${key}`, { signal: options.signal, timeoutMs: 10 * 60_000 });
    let w: IngestWriter;
    try {
      w = new IngestWriter(ref, expected, {
        dir: join(this.ingestDir, key),
        blobPath: this.blobPath(expected.digest),
        blobsDir: this.blobsDir,
      }, lock);
    } catch (err) {
      lock.release();
      throw err;
    }
    try {
      await w.resume(options.signal);
    } catch (err) {
      w.close(); // keeps the partial data for the next resume, lets go of the lock
      throw err;
    }
    return w;
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
    this.#reclaimOnce();
    const key = `tmp-${randomBytes(8).toString('hex')}`;
    // Lock first, then the dir: whoever sees the dir and gets the lock knows its writer is dead.
    const lock = tryLockNow(this.lockDir, `ingest-${key}`);
    if (!lock) throw new Error(`temp ingest ${key} is locked by another process`);
    const dir = join(this.ingestDir, key);
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      return new TempBlobWriter(dir, this.blobsDir, lock);
    } catch (err) {
      dropTempLock(lock);
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Deletes ingest `key` unless a writer holds it (a pull or commit in
   * progress). Returns false when it was held.
   */
  async removeIngest(key: string): Promise<boolean> {
    const lock = tryLockNow(this.lockDir, `ingest-${key}`);
    if (!lock) return false;
    try {
      fs.rmSync(join(this.ingestDir, key), { recursive: true, force: true });
      return true;
    } finally {
      // A tmp-* name is never used again: its lock file goes too (while held, so no one else is on it).
      if (key.startsWith('tmp-')) dropTempLock(lock);
      else lock.release();
    }
  }

  /** True when a live process holds ingest `key` (its writer). */
  ingestHeld(key: string): boolean {
    const lock = tryLockNow(this.lockDir, `ingest-${key}`);
    if (!lock) return true;
    if (key.startsWith('tmp-')) dropTempLock(lock);
    else lock.release();
    return false;
  }

  /**
   * Temp and in-memory ingests whose writer is dead: they can never be
   * resumed, so they are garbage at any age. Live ones are left alone.
   */
  abandonedTemporaryIngests(): IngestStatus[] {
    return this.ingests().filter((i) => i.temporary && !this.ingestHeld(i.key));
  }

  /** Removes dead temp ingests; returns what was removed. */
  async reclaimTemporaryIngests(): Promise<IngestStatus[]> {
    const out: IngestStatus[] = [];
    for (const i of this.ingests()) {
      if (i.temporary && (await this.removeIngest(i.key))) out.push(i);
    }
    return out;
  }

  // The cheap part of "store open repairs": once per store, before writing, drop
  // temp ingests that killed commits left (one readdir; a flock try per temp ingest).
  #reclaimOnce(): void {
    if (this.#reclaimed) return;
    this.#reclaimed = true;
    try {
      for (const i of this.ingests()) if (i.temporary) void this.removeIngest(i.key);
    } catch {
      /* best effort: gc reports what is left */
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
      const ref = read('ref');
      out.push({
        key,
        touchedMs,
        ref: ref ?? key,
        temporary: isTemporary(key, ref),
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
    /** Held while this writer lives: tells gc the ingest is not abandoned. */
    private readonly lock: FileLock,
  ) {
    super();
    fs.writeFileSync(join(dir, 'ref'), GENERATED_REF, { mode: 0o600 });
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
    dropTempLock(this.lock);
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
    dropTempLock(this.lock);
  }
}

/** Unlinks a temp ingest's lock file while holding it, then lets go (its name is never used again). */
function dropTempLock(lock: FileLock): void {
  fs.rmSync(lock.path, { force: true });
  lock.release();
}
