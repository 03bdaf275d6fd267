/**
 * commit: a container layer becomes an image.
 *   changes → layer tar → (sha256 = diffId) → gzip|zstd|none → content store
 *   base config + diff_id + history + --change → new config
 *   base layers + the new one → an OCI manifest → content store → image record
 * The new image layer in the driver is unpacked from the committed blob (its
 * diffId checked), never copied from the live container: writes that land
 * after the blob was made would otherwise make the stored layer differ from
 * its blob and diffId.
 */
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContentStore } from '../content/store.js';
import { type Digest, hexOf, sha256 } from '../digest.js';
import { HashStream } from '../util/hash-stream.js';
import { compressionStage } from '../layer/compress.js';
import { UsageError } from '../errors.js';
import { applyChange, type RunConfig } from '../oci/config-changes.js';
import { type Compression, MediaType } from '../oci/media-types.js';
import { imageConfigSchema, manifestSchema, parseJson } from '../oci/schemas.js';
import { formatPlatform } from '../platform.js';
import { formatReference, parseReference } from '../reference.js';
import { crashPoint, pausePoint } from '../util/crash-point.js';
import type { ContainerRecord } from './containers.js';
import { diffLayer, diffTar } from './differ.js';
import type { ImageRecord, ImageStore } from './image-store.js';
import { LayerStore } from './layer-store.js';

/** Options of Store.commit. */
export interface CommitOptions {
  /** Layer compression (default gzip). */
  compress?: Compression | undefined;
  /** Dockerfile-style instructions (`CMD ["sh"]`, `ENV A=b`, …). */
  changes?: string[] | undefined;
  /** History comment of the new step. */
  message?: string | undefined;
  /** Author of the new image (config and history). */
  author?: string | undefined;
  /** Stops the commit (TSG_ABORTED) before anything is registered; a partial blob is discarded. */
  signal?: AbortSignal | undefined;
  /** Bytes of the layer tar made so far (uncompressed; at most every 1 MiB, and once at the end). */
  onProgress?: ((progress: { bytes: number; done: boolean }) => void) | undefined;
}

/** Passes bytes through, reporting how many went by. */
function progressTap(onProgress: NonNullable<CommitOptions['onProgress']>): Transform {
  let bytes = 0;
  let reported = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes - reported >= 1 << 20) {
        reported = bytes;
        onProgress({ bytes, done: false });
      }
      cb(null, chunk);
    },
    flush(cb) {
      onProgress({ bytes, done: true });
      cb();
    },
  });
}

/** What Store.commit made: the image and its new layer. */
export interface CommitResult {
  image: ImageRecord;
  layer: { digest: Digest; diffId: Digest; size: number; mediaType: string };
  /** How the changes were found (native overlay upper, or tree comparison). */
  diffMethod: 'native' | 'naive';
}

const LAYER_TYPES: Record<Compression, string> = {
  gzip: MediaType.OciLayerGzip,
  zstd: MediaType.OciLayerZstd,
  none: MediaType.OciLayer,
};

/** Docker media types inside an OCI manifest: same bytes, OCI names. */
function ociLayerType(t: string): string {
  if (t === MediaType.DockerLayerGzip) return MediaType.OciLayerGzip;
  if (t === MediaType.DockerLayerForeignGzip) return MediaType.OciLayerNondistributableGzip;
  return t;
}


/**
 * Wall and process CPU (all threads) the last commit in this process spent
 * making its blob and building the stored layer from it: bench/commit-bench.ts reads it.
 */
export const commitTimings = { blobMs: 0, layerMs: 0, blobCpuMs: 0, layerCpuMs: 0 };
const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

export async function commitContainer(
  ctx: { content: ContentStore; images: ImageStore; layers: LayerStore },
  container: ContainerRecord,
  ref: string,
  options: CommitOptions = {},
): Promise<CommitResult> {
  const compression = options.compress ?? 'gzip';
  if (!(compression in LAYER_TYPES)) throw new UsageError('TSG_USAGE', `--compress must be gzip, zstd or none`);
  const name = formatReference(parseReference(ref));
  const { content, images, layers } = ctx;
  const driver = layers.driver;

  // The base image, from the content store (it outlives an `rmi --force`).
  const baseManifest = parseJson(manifestSchema, content.readBlob(container.imageDigest), `manifest ${container.imageDigest}`);
  const baseConfigBytes = content.readBlob(baseManifest.config.digest);
  const config = parseJson(imageConfigSchema, baseConfigBytes, `config ${baseManifest.config.digest}`);
  const runConfig: RunConfig = { ...(config.config ?? {}) } as RunConfig;
  for (const c of options.changes ?? []) applyChange(runConfig, c);

  // 1. The layer blob.
  const t0 = performance.now();
  const c0 = cpuMs();
  const parentId = container.parent ? hexOf(container.parent) : undefined;
  options.signal?.throwIfAborted();
  const diff = await diffLayer(driver, container.id, parentId);
  const tar = diffTar(diff);
  const tap = new HashStream();
  const writer = content.tempWriter();
  const stages: NodeJS.ReadWriteStream[] = [tap];
  if (options.onProgress) stages.push(progressTap(options.onProgress));
  // Off the main thread (pool / zstd worker): overlaps the generator and the diffId hash.
  if (compression !== 'none') stages.push(compressionStage(compression));
  try {
    await pipeline([tar, ...stages, writer] as unknown as [NodeJS.ReadableStream, NodeJS.WritableStream], { signal: options.signal });
  } catch (err) {
    writer.discard();
    throw err;
  }
  pausePoint('commit:layer-written'); // tests: kill here, with the whole layer in its temp ingest
  const blob = writer.commit();
  commitTimings.blobMs = performance.now() - t0;
  commitTimings.blobCpuMs = cpuMs() - c0;
  const diffId = tap.digest;
  const mediaType = LAYER_TYPES[compression];

  // 2. Config and manifest.
  const now = new Date().toISOString();
  const newConfig = {
    ...config,
    created: now,
    ...(options.author ? { author: options.author } : {}),
    config: runConfig,
    rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, diffId] },
    history: [
      ...(config.history ?? []),
      { created: now, created_by: 'tsgraph commit', ...(options.author ? { author: options.author } : {}), ...(options.message ? { comment: options.message } : {}) },
    ],
  };
  const configBytes = Buffer.from(JSON.stringify(newConfig));
  const configInfo = await content.writeBlob(configBytes, { digest: sha256(configBytes), size: configBytes.length });
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: configInfo.digest, size: configInfo.size },
    layers: [
      ...baseManifest.layers.map((l) => ({ mediaType: ociLayerType(l.mediaType), digest: l.digest, size: l.size })),
      { mediaType, digest: blob.digest, size: blob.size },
    ],
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestInfo = await content.writeBlob(manifestBytes, { digest: sha256(manifestBytes), size: manifestBytes.length });

  const record: ImageRecord = {
    name,
    digest: manifestInfo.digest,
    manifestDigest: manifestInfo.digest,
    manifestMediaType: MediaType.OciManifest,
    configDigest: configInfo.digest,
    platform: formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant }),
    layers: manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: newConfig.rootfs.diff_ids[i]! })),
    size: manifest.layers.reduce((n, l) => n + l.size, 0),
    source: `commit of ${container.name}`,
    created: now,
    pulledAt: now,
  };

  // 3. The image layer in the driver, from the blob's own bytes (the container may have changed since).
  pausePoint('commit:after-blob');
  const t1 = performance.now();
  const c1 = cpuMs();
  await layers.unpack(record, content, { signal: options.signal });
  commitTimings.layerMs = performance.now() - t1;
  commitTimings.layerCpuMs = cpuMs() - c1;
  crashPoint('commit:before-register');
  images.put(record);
  crashPoint('commit:registered');
  return { image: record, layer: { digest: blob.digest, diffId, size: blob.size, mediaType }, diffMethod: diff.method };
}
