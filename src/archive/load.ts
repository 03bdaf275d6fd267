/**
 * `loadArchive`: registers the images of an archive (OCI archive or
 * docker-archive) read from a stream, as `docker load` / `podman load`.
 *
 * All or nothing. The archive is spooled into temp ingests (spool.ts), then
 * every image is checked in full — manifests, configs, each blob's digest and
 * size, each layer's diffId — and only then are the blobs it uses committed
 * (a rename each, no copy) and each image registered through the pull path
 * (pull.ts: records, the layers unpacked by the layer store, the name last).
 * A bad archive stores nothing: no blob, no layer, no name. What is left of
 * a load killed half-way is temp ingests, which gc reclaims at once.
 * (A layer whose tar *content* the unpack refuses — `..` inside a layer —
 * fails as a pull would: its blobs and any layers unpacked stay for gc, and
 * every name this load had registered is put back as it was — removed, or
 * pointed again at what it named before.)
 */
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../digest.js';
import { hexOf } from '../digest.js';
import { NotFoundError, UnsupportedError, throwIfAborted } from '../errors.js';
import type { Descriptor } from '../oci/schemas.js';
import { type Platform, formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../platform.js';
import type { BlobStream, FetchedManifest, ImageSource } from '../source/source.js';
import type { ContentStore } from '../content/store.js';
import { acquireFairLock } from '../store/lock.js';
import type { ImageRecord } from '../store/image-store.js';
import { LayerStore } from '../store/layer-store.js';
import { type PullEvent, pullImage } from '../store/pull.js';
import type { Store } from '../store/store.js';
import { isDockerArchive, planDocker } from './docker-archive.js';
import { isOciArchive, planOci } from './oci-archive.js';
import type { ArchiveImage } from './plan.js';
import { Spool, malformed } from './spool.js';

/** An image archive's format: `docker-archive` (docker save) or `oci-archive` (an OCI layout in a tar). */
export type ArchiveFormat = 'docker-archive' | 'oci-archive';

/** Options of {@link loadArchive}. */
export interface LoadOptions {
  /** Stops the load (nothing stored when it fires before the blobs are committed). */
  signal?: AbortSignal | undefined;
  /** Platform to pick from a multi-platform image (default: this host). */
  platform?: Platform | string | undefined;
  /** Repository for images the archive does not name (`localhost/<name>:<config id>`) and bare OCI tags; default `image`, or the file's base name. */
  name?: string | undefined;
  /** Layers unpacked in parallel (default 3). */
  jobs?: number | undefined;
  /** Progress of registering each image (pull events: blobs found in the store, layers unpacked). */
  onProgress?: ((event: PullEvent) => void) | undefined;
}

/** One name a load registered. */
export interface LoadedImage {
  /** The name registered. */
  name: string;
  /** What the name resolves to (manifest, or the index above it). */
  digest: Digest;
  /** The image manifest (made from the files for a docker archive). */
  manifestDigest: Digest;
  /** The image ID (docker's). */
  configDigest: Digest;
}

/** What {@link loadArchive} did. */
export interface LoadResult {
  /** The format found from the content. */
  format: ArchiveFormat;
  /** Every name registered, in archive order. */
  images: LoadedImage[];
  /** Wall time of the whole load. */
  seconds: number;
}

/** The default repository name for an archive file: its base name, made a valid path component. */
export function fallbackName(file: string | undefined): string {
  const base = file ? basename(file).replace(/\.(tar|tgz|tar\.gz)$/i, '') : '';
  return base.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+|[._-]+$/g, '') || 'image';
}

/** An ImageSource over an image whose blobs were just committed from the archive. */
class ArchiveSource implements ImageSource {
  constructor(
    readonly imageName: string,
    readonly description: string,
    readonly image: ArchiveImage,
    readonly content: ContentStore,
  ) {}
  async resolve(): Promise<FetchedManifest> {
    return this.image.top;
  }
  async manifest(desc: Descriptor): Promise<FetchedManifest> {
    const m = this.image.children.get(desc.digest);
    if (!m) throw new NotFoundError('TSG_BLOB_NOT_FOUND', `image archive: manifest ${desc.digest} is not in the archive`, { data: { digest: desc.digest } });
    return m;
  }
  async blob(desc: Descriptor, offset: number): Promise<BlobStream> {
    return { start: offset, body: this.content.reader(desc.digest, offset) };
  }
  close(): void {}
}

const LOCK_TIMEOUT_MS = 10 * 60_000;

/**
 * Loads the archive `readable` into `store` and registers the names it
 * carries (each image's names; an unnamed one as `localhost/<name>:<12 hex of its ID>`).
 */
export async function loadArchive(store: Store, readable: Readable | NodeJS.ReadableStream, options: LoadOptions = {}): Promise<LoadResult> {
  const started = performance.now();
  // Only a --platform the user gave is a filter: without one, a single-platform image of any
  // architecture loads (as docker/podman load do) and an index's entry for this host is picked.
  const explicit = typeof options.platform === 'string' ? parsePlatform(options.platform) : options.platform;
  const platform = explicit ?? hostPlatform();
  const fallback = fallbackName(options.name);
  // Shared gc lock for the whole load: gc must not sweep blobs committed before their name is registered.
  const lock = await acquireFairLock(join(store.root, 'locks'), 'gc', {
    shared: true,
    signal: options.signal,
    timeoutMs: LOCK_TIMEOUT_MS,
    what: `the gc lock of ${store.root} (a gc is running or waiting)`,
  });
  try {
    let format: ArchiveFormat;
    let images: ArchiveImage[];
    const spool = await Spool.read(store.content, readable, options.signal);
    try {
      if (isDockerArchive(spool)) {
        format = 'docker-archive';
        images = await planDocker(spool);
      } else if (isOciArchive(spool)) {
        format = 'oci-archive';
        images = await planOci(spool, platform, fallback);
      } else if (spool.get('repositories')) {
        throw new UnsupportedError('TSG_UNSUPPORTED', 'image archive is in the docker 1.9 format (repositories, no manifest.json), which tsgraph does not load; re-save it with a current docker or skopeo');
      } else {
        throw malformed('it has neither manifest.json (docker-archive) nor oci-layout and index.json (OCI archive)');
      }
      // Every check that can fail runs before anything is stored: the platform too (pull would refuse it per image, after earlier images were registered).
      if (explicit) for (const image of images) refusePlatform(image, explicit);
      throwIfAborted(options.signal);
      // Everything checked: the blobs the images use go into the store, the rest is dropped.
      for (const image of images) for (const f of image.files) spool.commit(f);
    } finally {
      spool.discard();
    }
    const loaded: LoadedImage[] = [];
    // What each name this load registers pointed at before: a failure later (an unpack refusing a
    // layer's content, ENOSPC, an abort) puts every one back, so no name of a failed load stays.
    const registered: Array<{ name: string; before: ImageRecord | undefined }> = [];
    try {
      for (const image of images) {
        const names = image.names.length ? image.names : [`localhost/${fallback}:${hexOf(image.configDigest).slice(0, 12)}`];
        for (const name of [...new Set(names)]) {
          registered.push({ name, before: store.images.get(name) });
          loaded.push(await register(store, format, name, image, explicit, options));
        }
      }
    } catch (err) {
      for (const { name, before } of registered.reverse()) {
        if (before) store.images.put(before);
        else store.images.remove(name);
      }
      throw err;
    }
    return { format, images: loaded, seconds: (performance.now() - started) / 1000 };
  } catch (err) {
    throwIfAborted(options.signal);
    throw err;
  } finally {
    lock.release();
  }
}

/** Refuses an image that is not for `wanted` (a single-platform one; an index entry was picked by platform). */
function refusePlatform(image: ArchiveImage, wanted: Platform): void {
  if (image.children.size > 0 || platformMatches(wanted, image.platform)) return;
  const have = formatPlatform(image.platform);
  throw new NotFoundError('TSG_PLATFORM_NOT_FOUND', `image archive: image ${image.configDigest} is a single-platform image for ${have}, not ${formatPlatform(wanted)}`, {
    data: { wanted: formatPlatform(wanted), available: [have] },
  });
}

/** Registers `image` under `name` through the pull path (records, layers unpacked, the name last). */
async function register(store: Store, format: ArchiveFormat, name: string, image: ArchiveImage, platform: Platform | undefined, options: LoadOptions): Promise<LoadedImage> {
  const source = new ArchiveSource(name, `${format}:${name}`, image, store.content);
  const result = await pullImage(source, store.content, store.images, {
    platform,
    jobs: options.jobs,
    signal: options.signal,
    onProgress: options.onProgress,
    unpack: (record, fetch) => store.layers.unpack(record, store.content, { signal: options.signal, onEvent: options.onProgress, fetch, jobs: options.jobs }),
    isPresent: (record) => isPresent(store, record),
  });
  const r = result.image;
  return { name: r.name, digest: r.digest, manifestDigest: r.manifestDigest, configDigest: r.configDigest };
}

/** As Store's re-pull fast path: blobs stored and the top layer complete. */
function isPresent(store: Store, image: ImageRecord): boolean {
  const blobs = [image.digest, image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
  if (!blobs.every((d) => store.content.has(d))) return false;
  const top = LayerStore.topChainId(image);
  return top === undefined || store.layers.isComplete(top);
}
