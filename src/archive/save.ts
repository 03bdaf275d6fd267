/**
 * `saveImages`: writes images of the store as one archive to a stream, as
 * `docker save` / `podman save`:
 *  - `docker-archive` (the default, what `docker load` of every version and
 *    `podman load` read): manifest.json + repositories + `<config>.json` +
 *    `<diffId>.tar` per layer, layers uncompressed as docker writes them;
 *  - `oci-archive`: an OCI image layout (oci-layout, index.json, blobs as
 *    stored, compressed or not) in a tar, what `skopeo … oci-archive:` reads.
 * Several images share their blobs (each written once). Entries are written
 * with fixed owner, mode and time, so saving the same images twice gives the
 * same bytes. The gc lock is held shared while writing: a concurrent `rmi` +
 * `gc` cannot pull a blob away mid-archive.
 */
import { join } from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { ContentStore } from '../content/store.js';
import type { Digest } from '../digest.js';
import { hexOf } from '../digest.js';
import { UsageError, throwIfAborted } from '../errors.js';
import { decompressionStages } from '../layer/compression.js';
import { layerCompression, type Compression } from '../oci/media-types.js';
import { acquireFairLock } from '../store/lock.js';
import type { ImageRecord } from '../store/image-store.js';
import type { Store } from '../store/store.js';
import { configPath, dockerManifests, layerPath } from './docker-archive.js';
import type { ArchiveFormat } from './load.js';
import { OCI_LAYOUT, ociIndex } from './oci-archive.js';

/** Options of {@link saveImages}. */
export interface SaveOptions {
  /** `docker-archive` (default) or `oci-archive`. */
  format?: ArchiveFormat | undefined;
  /** Stops writing (the writable is left as it is: a file's caller removes it). */
  signal?: AbortSignal | undefined;
}

/** What {@link saveImages} wrote. */
export interface SaveResult {
  /** The format written. */
  format: ArchiveFormat;
  /** Each image written once, with the name it was asked under. */
  images: Array<{ name: string; manifestDigest: Digest; configDigest: Digest }>;
  /** Bytes of the archive. */
  bytes: number;
}

/** The archive formats save writes and load reads. */
export const ARCHIVE_FORMATS: readonly ArchiveFormat[] = ['docker-archive', 'oci-archive'];

const EPOCH = new Date(0);
const FILE = { mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: EPOCH } as const;

/** Adds one entry; resolves when tar-stream took all of it. */
function add(pack: tar.Pack, name: string, size: number, body: Buffer | Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (Buffer.isBuffer(body)) {
      pack.entry({ ...FILE, name, size }, body, (err) => (err ? reject(err) : resolve()));
      return;
    }
    const entry = pack.entry({ ...FILE, name, size }, (err) => (err ? reject(err) : resolve()));
    pipeline(body, entry).catch(reject);
  });
}

/** The uncompressed tar of a stored layer blob, and its length (counted by a first pass). */
async function uncompressed(content: ContentStore, digest: Digest, compression: Compression): Promise<{ size: number; open: () => Readable }> {
  const open = () => {
    const stages = decompressionStages(compression);
    const src = content.reader(digest);
    let out: NodeJS.ReadableStream = src;
    for (const s of stages) out = out.pipe(s);
    // Errors of any stage reach the last one.
    for (const s of [src, ...stages]) (s as unknown as Readable).on('error', (e) => (stages.at(-1) as unknown as Readable).destroy(e));
    return stages.at(-1) as unknown as Readable;
  };
  let size = 0;
  await pipeline(open(), new Writable({ write: (c: Buffer, _e, cb) => ((size += c.length), cb()) }));
  return { size, open };
}

/**
 * Writes the images `refs` name (full names, short names or ID prefixes,
 * each once) to `writable` as one archive. Throws before writing a byte when
 * a name is not found.
 */
export async function saveImages(store: Store, refs: string[], writable: NodeJS.WritableStream, options: SaveOptions = {}): Promise<SaveResult> {
  const format = options.format ?? 'docker-archive';
  if (!ARCHIVE_FORMATS.includes(format)) throw new UsageError('TSG_USAGE', `unknown archive format ${JSON.stringify(format)} (docker-archive or oci-archive)`);
  if (refs.length === 0) throw new UsageError('TSG_USAGE', 'name at least one image to save');
  const lock = await acquireFairLock(join(store.root, 'locks'), 'gc', {
    shared: true,
    signal: options.signal,
    timeoutMs: 10 * 60_000,
    what: `the gc lock of ${store.root} (a gc is running or waiting)`,
  });
  try {
    const byName = new Map<string, ImageRecord>();
    for (const ref of refs) {
      const image = store.findImage(ref);
      byName.set(image.name, image);
    }
    const images = [...byName.values()];
    for (const i of images) for (const d of [i.manifestDigest, i.configDigest, ...i.layers.map((l) => l.digest)]) store.content.reader(d).destroy(); // present, or TSG_BLOB_NOT_FOUND now
    const pack = tar.pack();
    let bytes = 0;
    const counter = new Writable({
      write(chunk: Buffer, _e, cb) {
        bytes += chunk.length;
        writable.write(chunk) ? cb() : writable.once('drain', () => cb());
      },
    });
    const out = pipeline(pack, counter, ...(options.signal ? [{ signal: options.signal }] : []));
    // The writable failing (EPIPE, a full disk) stops the pack at once.
    const failed = new Promise<never>((_r, reject) => writable.once('error', reject));
    failed.catch(() => {});
    const write = format === 'oci-archive' ? writeOci(store.content, images, pack, options.signal) : writeDocker(store.content, images, pack, options.signal);
    // Whichever settles first decides; the others' later rejections are expected, not unhandled.
    out.catch(() => {});
    write.catch(() => {});
    try {
      await Promise.race([write.then(() => pack.finalize()), failed]);
      await Promise.race([out, failed]);
    } catch (err) {
      pack.destroy();
      throwIfAborted(options.signal); // TSG_ABORTED, not the stream's AbortError
      throw err;
    }
    return { format, images: images.map((i) => ({ name: i.name, manifestDigest: i.manifestDigest, configDigest: i.configDigest })), bytes };
  } finally {
    lock.release();
  }
}

async function writeOci(content: ContentStore, images: ImageRecord[], pack: tar.Pack, signal?: AbortSignal): Promise<void> {
  await add(pack, 'oci-layout', OCI_LAYOUT.length, OCI_LAYOUT);
  pack.entry({ ...FILE, mode: 0o755, name: 'blobs/', type: 'directory' });
  pack.entry({ ...FILE, mode: 0o755, name: 'blobs/sha256/', type: 'directory' });
  const written = new Set<Digest>();
  for (const image of images) {
    for (const digest of [...image.layers.map((l) => l.digest), image.configDigest, image.manifestDigest]) {
      if (written.has(digest)) continue;
      throwIfAborted(signal);
      written.add(digest);
      await add(pack, `blobs/sha256/${hexOf(digest)}`, content.info(digest)!.size, content.reader(digest));
    }
  }
  const index = ociIndex(images.map((i) => ({
    name: i.name,
    manifest: { mediaType: i.manifestMediaType, digest: i.manifestDigest, size: content.info(i.manifestDigest)!.size },
  })));
  await add(pack, 'index.json', index.length, index);
}

async function writeDocker(content: ContentStore, images: ImageRecord[], pack: tar.Pack, signal?: AbortSignal): Promise<void> {
  const written = new Set<string>();
  for (const image of images) {
    const config = configPath(image.configDigest);
    if (!written.has(config)) {
      written.add(config);
      await add(pack, config, content.info(image.configDigest)!.size, content.reader(image.configDigest));
    }
    for (const layer of image.layers) {
      const path = layerPath(layer.diffId);
      if (written.has(path)) continue;
      throwIfAborted(signal);
      written.add(path);
      const compression = layerCompression(layer.mediaType) ?? 'none';
      if (compression === 'none') {
        await add(pack, path, layer.size, content.reader(layer.digest));
      } else {
        const tarOf = await uncompressed(content, layer.digest, compression);
        await add(pack, path, tarOf.size, tarOf.open());
      }
    }
  }
  // One manifest.json entry per image, with every name it was asked under (as docker groups RepoTags).
  const byImage = new Map<Digest, { names: string[]; configDigest: Digest; diffIds: Digest[] }>();
  for (const i of images) {
    const entry = byImage.get(i.manifestDigest);
    if (entry) entry.names.push(i.name);
    else byImage.set(i.manifestDigest, { names: [i.name], configDigest: i.configDigest, diffIds: i.layers.map((l) => l.diffId) });
  }
  const { manifest, repositories } = dockerManifests([...byImage.values()]);
  await add(pack, 'manifest.json', manifest.length, manifest);
  await add(pack, 'repositories', repositories.length, repositories);
}
