/**
 * Reads an image archive (a tar: `docker save`, `skopeo copy … oci-archive:`)
 * into temp ingests of the content store, without storing anything.
 *
 * An archive is hostile input, like a registry blob. Its tar goes through the
 * layer code's strict TarGuard (end marker, numeric fields, PAX), then:
 *  - every entry name is checked: relative, no `..`, no control characters,
 *    each name once; the name is only a key here, nothing is created by it;
 *  - only regular files and directories are taken. A symlink or hard link is
 *    an alias of a regular file the archive already held (old `docker save`
 *    links a layer.tar shared by two images), resolved by name only and never
 *    outside the archive; anything else (a link out, a device) is refused;
 *  - each file's declared size is checked against the free space first, so a
 *    header claiming a terabyte fails at once, not after filling the disk;
 *  - each file is hashed as it is written to its own temp ingest (tempWriter,
 *    which gc reclaims if the process dies), so every blob digest can be
 *    checked before a single blob is committed. A compressed file is
 *    decompressed and hashed (its diffId) only when the plan uses it as a
 *    layer (diffIdOf, from the temp ingest): a small file inflating to
 *    gigabytes that no manifest names costs nothing but its own bytes.
 * Small files are kept in memory too (the JSON of the archive).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { ContentStore, TempBlobWriter } from '../content/store.js';
import { type Digest, digestOfHasher, newHasher } from '../digest.js';
import { IntegrityError, ResourceError, TsgraphError, UnsafeError, throwIfAborted } from '../errors.js';
import { decompressionStages, sniffCompression } from '../layer/compression.js';
import { TarGuard } from '../layer/tar-scan.js';
import { byteString } from '../util/byte-path.js';
import type { Compression } from '../oci/media-types.js';

/** Files up to this size are also kept in memory (manifests, configs, index.json). */
export const MAX_JSON_BYTES = 4 << 20;
/** All in-memory copies together. */
const MAX_MEMORY_BYTES = 64 << 20;
/** Entries of one archive: real ones have a few per image; each file costs a temp ingest. */
export const MAX_ENTRIES = 100_000;

/** One regular file of the archive, spooled into a temp ingest. */
export interface SpooledFile {
  name: string;
  digest: Digest;
  size: number;
  compression: Compression;
  /** Digest of the decompressed bytes (see diffIdOf): computed once, when a manifest uses the file as a layer. */
  diffId?: Promise<Digest> | undefined;
  /** The bytes, when small enough to keep. */
  bytes?: Buffer | undefined;
  writer: TempBlobWriter;
}

export function malformed(message: string, data: Record<string, unknown> = {}): IntegrityError {
  return new IntegrityError('TSG_INVALID_MANIFEST', `image archive is malformed: ${message}`, { data });
}

/** `./a/b` → `a/b`; refuses absolute names, `..`, empty parts and control characters. */
export function archiveName(raw: string, what = 'entry'): string {
  let name = raw.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  // eslint-disable-next-line no-control-regex
  if (raw.startsWith('/') || /[\x00-\x1f\x7f]/.test(raw) || name.split('/').some((p) => p === '..' || p === '')) {
    throw new UnsafeError('TSG_UNSAFE_PATH', `image archive ${what} ${JSON.stringify(raw)} is not a plain relative name (absolute, .. or control characters)`, {
      data: { name: raw },
    });
  }
  if (name === '.') name = '';
  return name;
}

/** Where a link named `from` points, as an archive name (symlinks relative to their dir, hard links to the root). */
function linkTarget(from: string, target: string, symlink: boolean): string | undefined {
  if (target.startsWith('/')) return undefined;
  const parts = symlink ? from.split('/').slice(0, -1) : [];
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (parts.length === 0) return undefined; // above the archive's root
      parts.pop();
    } else parts.push(p);
  }
  return parts.join('/');
}

/** Bytes free for the content store (its ingests live on the same filesystem). */
function freeBytes(dir: string): number {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

/** The files of an archive, spooled; discard() (or commit of each blob used) lets go of them. */
export class Spool {
  readonly files = new Map<string, SpooledFile>();
  readonly #all: SpooledFile[] = [];
  #signal: AbortSignal | undefined;

  /**
   * The digest of `file` decompressed (a layer's diffId; its digest when not
   * compressed), read back from its temp ingest (or memory) once and kept.
   * Rejects when the bytes do not decompress.
   */
  diffIdOf(file: SpooledFile): Promise<Digest> {
    if (file.compression === 'none') return Promise.resolve(file.digest);
    file.diffId ??= hashDecompressed(file, this.#signal);
    return file.diffId;
  }

  /** A file by archive name; undefined when absent. */
  get(name: string): SpooledFile | undefined {
    return this.files.get(name);
  }

  /** Moves `file` into the content store (named by its digest). */
  commit(file: SpooledFile): void {
    if (!this.#all.includes(file)) return;
    file.writer.commit();
    this.#all.splice(this.#all.indexOf(file), 1);
  }

  /** Drops every file not committed. */
  discard(): void {
    for (const f of this.#all.splice(0)) f.writer.discard();
  }

  /** Reads `readable` (a tar archive) into temp ingests of `content`. On failure nothing is left. */
  static async read(content: ContentStore, readable: Readable | NodeJS.ReadableStream, signal?: AbortSignal): Promise<Spool> {
    const spool = new Spool();
    spool.#signal = signal;
    let memory = 0;
    let count = 0;
    // Names are bytes (one char per byte): latin1 for ustar/GNU names, the scanner's byte-exact PAX records for the rest.
    const extract = tar.extract({ filenameEncoding: 'latin1' } as Parameters<typeof tar.extract>[0]);
    const guard = new TarGuard();
    const pax = (h: tar.Header, key: string): string | undefined => {
      const value = guard.scanner.records.get((h as tar.Header & { byteOffset?: number }).byteOffset ?? -1)?.get(key);
      return value && value.length > 0 ? byteString(value) : undefined;
    };
    const entries = async () => {
      for await (const entry of extract) {
        throwIfAborted(signal);
        const h = entry.header;
        if (++count > MAX_ENTRIES) throw malformed(`it has more than ${MAX_ENTRIES} entries`);
        const name = archiveName(pax(h, 'path') ?? h.name);
        if (spool.files.has(name)) throw malformed(`${JSON.stringify(name)} is in the archive twice (readers disagree on which one counts)`, { name });
        if (h.type === 'directory') {
          entry.resume();
          continue;
        }
        if (h.type === 'symlink' || h.type === 'link') {
          entry.resume();
          const linkname = pax(h, 'linkpath') ?? h.linkname ?? '';
          const to = linkTarget(name, linkname, h.type === 'symlink');
          const file = to === undefined ? undefined : spool.files.get(to);
          if (!file) {
            throw new UnsafeError('TSG_UNSAFE_PATH', `image archive entry ${JSON.stringify(name)} is a link to ${JSON.stringify(linkname)}, which is not a file earlier in the archive`, {
              data: { name, target: linkname },
            });
          }
          spool.files.set(name, file);
          continue;
        }
        if (h.type !== 'file' && h.type !== 'contiguous-file') {
          throw new UnsafeError('TSG_UNSAFE_PATH', `image archive entry ${JSON.stringify(name)} is a ${h.type}, not a regular file`, { data: { name, type: h.type } });
        }
        const size = h.size ?? 0;
        const free = freeBytes(content.blobsDir);
        if (size > free) {
          throw new ResourceError('TSG_NO_SPACE', `image archive entry ${JSON.stringify(name)} declares ${size} bytes, more than the ${free} bytes free in the store`, {
            data: { name, size, free },
          });
        }
        const keep = size <= MAX_JSON_BYTES && memory + size <= MAX_MEMORY_BYTES;
        if (keep) memory += size;
        const file = await spoolFile(content, entry as unknown as Readable, name, size, keep, signal);
        spool.#all.push(file);
        spool.files.set(name, file);
      }
    };
    const piped = pipeline(readable as Readable, guard, extract, ...(signal ? [{ signal }] : []));
    const taken = entries();
    try {
      await Promise.all([piped, taken]);
    } catch (err) {
      // Both sides settle first: the file being spooled when the tar broke drops its own temp ingest.
      extract.destroy();
      await Promise.allSettled([piped, taken]);
      spool.discard();
      throw archiveError(err);
    }
    return spool;
  }
}

/** The layer scanner speaks of "layer tar"; here it is the archive's own tar. */
function archiveError(err: unknown): unknown {
  if (err instanceof TsgraphError && err.code === 'TSG_INVALID_LAYER') {
    return malformed(err.message.replace(/^layer tar is malformed: /, ''), err.data);
  }
  if ((err as { code?: string })?.code === 'ABORT_ERR') return err;
  if (err instanceof Error && !(err instanceof TsgraphError) && /tar|header|Unexpected end/i.test(err.message)) {
    return malformed(err.message);
  }
  return err;
}

/** One entry into a temp ingest, hashed (a compressed one is decompressed later, only if used as a layer). */
async function spoolFile(content: ContentStore, entry: Readable, name: string, size: number, keep: boolean, signal?: AbortSignal): Promise<SpooledFile> {
  const writer = content.tempWriter();
  const hash = newHasher();
  const chunks: Buffer[] = [];
  let compression: Compression | undefined;
  let written = 0;
  try {
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        written += chunk.length;
        hash.update(chunk);
        if (keep) chunks.push(chunk);
        compression ??= sniffCompression(chunk) ?? 'none';
        if (writer.write(chunk)) return cb();
        writer.once('drain', () => cb());
      },
      final(cb) {
        writer.end(cb);
      },
    });
    await pipeline(entry, sink, ...(signal ? [{ signal }] : []));
    if (written !== size) throw malformed(`entry ${JSON.stringify(name)} ends after ${written} of its ${size} bytes`, { name });
    const digest = digestOfHasher(hash);
    return { name, digest, size, compression: compression ?? 'none', bytes: keep ? Buffer.concat(chunks) : undefined, writer };
  } catch (err) {
    writer.destroy();
    writer.discard();
    throw err;
  }
}

/** The temp ingest's data file (ContentStore.tempWriter writes `<dir>/data`; the writer keeps `dir`). */
function spooledPath(file: SpooledFile): string {
  return join((file.writer as unknown as { dir: string }).dir, 'data');
}

/** Decompresses a spooled file (from memory, or its temp ingest) and hashes the output: its diffId. */
async function hashDecompressed(file: SpooledFile, signal?: AbortSignal): Promise<Digest> {
  const stages = decompressionStages(file.compression);
  const hash = newHasher();
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      cb();
    },
  });
  const input = file.bytes ? Readable.from([file.bytes]) : fs.createReadStream(spooledPath(file));
  await pipeline([input, ...stages, out] as unknown as [Readable, NodeJS.WritableStream], ...(signal ? [{ signal }] : []));
  return digestOfHasher(hash);
}
