/**
 * push: an image from the store to a registry.
 *   blobs (config + layers), bounded parallel: HEAD → skip if present;
 *   else cross-repo mount from another repository of the same registry that
 *   the store knows holds it; else upload — one PUT up to `chunkSize`,
 *   PATCH chunks above it. The manifest goes last, so a tag never points at
 *   missing blobs.
 */
import * as fs from 'node:fs';
import type { ContentStore } from '../content/store.js';
import type { Digest } from '../digest.js';
import { throwIfAborted } from '../errors.js';
import { type Reference, formatReference, parseReference } from '../reference.js';
import type { RegistryClient } from '../registry/client.js';
import type { ImageRecord, ImageStore } from './image-store.js';
import { mapLimit } from '../util/map-limit.js';
import { crashPoint } from '../util/crash-point.js';

/** Options of Store.push. */
export interface PushOptions {
  jobs?: number | undefined;
  /** Blobs above this size go up in PATCH chunks of this size (default 16 MiB). */
  chunkSize?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((e: PushEvent) => void) | undefined;
}

/** A progress event of a push. */
export type PushEvent =
  | { type: 'blob-exists'; digest: Digest; size: number }
  | { type: 'blob-mounted'; digest: Digest; size: number; from: string }
  | { type: 'blob-start'; digest: Digest; size: number }
  | { type: 'blob-progress'; digest: Digest; size: number; current: number }
  | { type: 'blob-done'; digest: Digest; size: number };

/** What Store.push did: blobs uploaded, already there or cross-mounted, and the manifest digest. */
export interface PushResult {
  ref: string;
  digest: Digest;
  uploaded: number;
  existed: number;
  mounted: number;
  bytesUploaded: number;
}

/** A repository on `dest`'s registry, other than dest's, that the store got `digest` from. */
function mountSource(images: ImageStore, dest: Reference, digest: Digest): string | undefined {
  for (const img of images.list()) {
    if (img.configDigest !== digest && !img.layers.some((l) => l.digest === digest)) continue;
    let src;
    try {
      src = parseReference(img.source);
    } catch {
      continue; // an OCI layout or a commit: no registry repository to mount from
    }
    if (src.registry === dest.registry && src.repository !== dest.repository) return src.repository;
  }
  return undefined;
}

export async function pushImage(
  ctx: { content: ContentStore; images: ImageStore; client: RegistryClient },
  image: ImageRecord,
  destination: string,
  options: PushOptions = {},
): Promise<PushResult> {
  const { content, images, client } = ctx;
  const dest = parseReference(destination);
  const chunkSize = options.chunkSize ?? 16 << 20;
  const emit = options.onProgress ?? (() => {});
  const result: PushResult = { ref: formatReference(dest), digest: image.manifestDigest, uploaded: 0, existed: 0, mounted: 0, bytesUploaded: 0 };
  const blobs = [{ digest: image.configDigest, size: content.info(image.configDigest)?.size ?? 0 }, ...image.layers.map((l) => ({ digest: l.digest, size: l.size }))];

  const pushBlob = async (b: { digest: Digest; size: number }) => {
    throwIfAborted(options.signal);
    if (await client.hasBlob(dest.registry, dest.repository, b.digest, options.signal)) {
      result.existed++;
      emit({ type: 'blob-exists', ...b });
      return;
    }
    const from = mountSource(images, dest, b.digest);
    const started = await client.startUpload(dest.registry, dest.repository, b.digest, from, options.signal);
    if (started.mounted) {
      result.mounted++;
      emit({ type: 'blob-mounted', ...b, from: from! });
      return;
    }
    emit({ type: 'blob-start', ...b });
    const fd = fs.openSync(content.blobPath(b.digest), 'r');
    try {
      let location = started.location;
      let offset = 0;
      // Chunks are read into memory one at a time: bounded, and replayable on retry.
      while (b.size - offset > chunkSize) {
        const chunk = Buffer.alloc(chunkSize);
        fs.readSync(fd, chunk, 0, chunkSize, offset);
        location = await client.uploadChunk(dest.registry, dest.repository, location, chunk, offset, options.signal);
        offset += chunkSize;
        emit({ type: 'blob-progress', ...b, current: offset });
      }
      const last = Buffer.alloc(b.size - offset);
      fs.readSync(fd, last, 0, last.length, offset);
      await client.finishUpload(dest.registry, dest.repository, location, b.digest, last, options.signal);
    } finally {
      fs.closeSync(fd);
    }
    result.uploaded++;
    result.bytesUploaded += b.size;
    emit({ type: 'blob-done', ...b });
  };

  await mapLimit(blobs, options.jobs ?? 3, pushBlob);
  crashPoint('push:blobs-uploaded');

  const manifest = content.readBlob(image.manifestDigest);
  await client.pushManifest(dest.registry, dest.repository, dest.digest ?? dest.tag ?? 'latest', manifest, image.manifestMediaType, options.signal);
  return result;
}
