/**
 * The pull algorithm, independent of where the image comes from:
 *   resolve → (index: pick the platform) → manifest → config → layers in
 *   parallel (bounded) → register the name.
 * Every byte is verified on the way into the content store. The image is
 * registered last, so a failed pull leaves no name behind; blobs that did
 * arrive stay (a retry reuses them, gc reclaims them).
 */
import type { ContentStore } from '../content/store.js';
import { type Digest, sha256, sha256Hex } from '../digest.js';
import { IntegrityError, NotFoundError, TsgraphError, UnsupportedError, throwIfAborted } from '../errors.js';
import { invalidManifest } from '../oci/errors.js';
import { SCHEMA1_TYPES, isIndexType, isManifestType, layerCompression } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, Manifest } from '../oci/schemas.js';
import { type Platform, formatPlatform, hostPlatform, platformMatches } from '../platform.js';
import type { FetchedManifest, ImageSource } from '../source/source.js';
import { downloadBlob } from './download.js';
import { mapLimit } from '../util/map-limit.js';
import type { ImageRecord, ImageStore } from './image-store.js';
import type { LayerFetch, UnpackEvent } from './layer-store.js';
import type { BlobTee } from './blob-tee.js';
import { crashPoint } from '../util/crash-point.js';

export interface PullOptions {
  /** Platform to pick from an index; default: this host. */
  platform?: Platform | undefined;
  /** Parallel layer downloads (default 3). */
  jobs?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((event: PullEvent) => void) | undefined;
  /**
   * Unpacks the layers (LayerStore.unpack) before the name is registered,
   * fed by `fetch`: each layer's download is teed into its unpack. Without
   * it the layers are only downloaded, `jobs` at a time.
   */
  unpack?: ((image: ImageRecord, fetch: LayerFetch) => Promise<{ unpacked: number; reused: number }>) | undefined;
  /**
   * The re-pull fast path: called with the record already registered under
   * this name when it names the very manifest the source resolved to; true
   * when it needs nothing (blobs stored, layers complete). The pull then
   * returns it without reading the config or writing anything.
   */
  isPresent?: ((image: ImageRecord) => boolean) | undefined;
}

export type BlobKind = 'manifest' | 'config' | 'layer';

/** A progress event of a pull (resolve, per-layer download and unpack). */
export type PullEvent =
  | { type: 'resolved'; source: string; digest: Digest; mediaType: string }
  | { type: 'platform'; digest: Digest; platform: string }
  | { type: 'blob-exists'; kind: BlobKind; digest: Digest; size: number }
  | { type: 'blob-start'; kind: BlobKind; digest: Digest; size: number; offset: number }
  | { type: 'blob-progress'; kind: BlobKind; digest: Digest; size: number; current: number }
  | { type: 'blob-done'; kind: BlobKind; digest: Digest; size: number; fetched: number }
  | UnpackEvent;

/** What a pull did: the image registered, blobs fetched or reused, layers unpacked or reused. */
export interface PullResult {
  /** Name the image is registered under. */
  name: string;
  image: ImageRecord;
  /** Bytes transferred by this pull (blobs, not manifests). */
  bytesFetched: number;
  /** Bytes of blobs that were already in the store. */
  bytesReused: number;
  blobsFetched: number;
  blobsReused: number;
  /** Layers unpacked into the driver by this pull, and layers it found already there. */
  layersUnpacked: number;
  layersReused: number;
  seconds: number;
  /**
   * What the pull did to the name: `downloaded` (blobs fetched), `tagged` (every
   * blob was already stored: the name is new, or now points at other content),
   * `up-to-date` (the name already pointed at this image).
   */
  status: 'downloaded' | 'tagged' | 'up-to-date';
}

const MAX_INDEX_DEPTH = 3;

function refuseSchema1(mediaType: string, value: unknown, what: string): void {
  const version = (value as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (SCHEMA1_TYPES.includes(mediaType) || version === 1) {
    throw new UnsupportedError(
      'TSG_UNSUPPORTED',
      `${what} is a Docker schema1 manifest, which tsgraph does not pull (deprecated since 2017); re-push the image with a current tool`,
      { data: { mediaType } },
    );
  }
}

/** Picks the platform manifest, following nested indexes a bounded number of times. */
/** How long a failed pull waits for its aborted downloads to let go of their ingests. */
const DOWNLOAD_STOP_WAIT_MS = 5_000;

/**
 * A pull that ran out of space drops its partial downloads: they are what
 * fills the disk (an unpack's ENOSPC aborts the downloads teed into it, which
 * would otherwise keep their bytes for a resume), and `gc`, which the error
 * tells the user to run, must be able to give that space back.
 */
async function dropPartials(content: ContentStore, layers: Descriptor[], downloads: Set<Promise<unknown>>): Promise<void> {
  const stop = new Promise<void>((r) => setTimeout(r, DOWNLOAD_STOP_WAIT_MS).unref());
  await Promise.race([Promise.all(downloads), stop]);
  // An ingest is keyed by its ref, here the digest.
  for (const l of layers) if (!content.has(l.digest)) await content.removeIngest(sha256Hex(l.digest)).catch(() => false);
}

/**
 * The zod schemas, loaded on first use: zod and the validators cost ~0.1 s of
 * start-up, which a re-pull of an image already present never needs.
 */
const schemas = () => import('../oci/schemas.js');

async function resolveManifest(
  source: ImageSource,
  top: FetchedManifest,
  platform: Platform,
  signal: AbortSignal | undefined,
): Promise<{ manifest: Manifest; fetched: FetchedManifest; chain: FetchedManifest[] }> {
  let current = top;
  const chain: FetchedManifest[] = [];
  for (let depth = 0; depth <= MAX_INDEX_DEPTH; depth++) {
    // Parsed once: the schema1 check, the declared media type and the schema all read this value.
    const { indexSchema, manifestSchema, parseJsonValue, validate } = await schemas();
    const value = parseJsonValue(current.bytes, `manifest ${current.digest}`);
    refuseSchema1(current.mediaType, value, source.description);
    chain.push(current);
    const inBody = (value as { mediaType?: unknown } | null)?.mediaType;
    const declared = typeof inBody === 'string' ? inBody : current.mediaType;
    if (isIndexType(current.mediaType) || isIndexType(declared)) {
      const index = validate(indexSchema, value, `index ${current.digest}`);
      const choice = index.manifests.find(
        (m) => (isManifestType(m.mediaType) || isIndexType(m.mediaType)) && platformMatches(platform, m.platform),
      );
      if (!choice) {
        const available = index.manifests
          .filter((m) => m.platform)
          .map((m) => formatPlatform({ os: m.platform!.os, architecture: m.platform!.architecture, variant: m.platform!.variant }));
        throw new NotFoundError(
          'TSG_PLATFORM_NOT_FOUND',
          `${source.description} has no image for ${formatPlatform(platform)} (available: ${available.join(', ') || 'none'})`,
          { data: { wanted: formatPlatform(platform), available } },
        );
      }
      const child = await source.manifest(choice, signal);
      verifyDescriptor(choice, child.bytes, 'manifest');
      current = { ...child, mediaType: choice.mediaType };
      continue;
    }
    if (!isManifestType(current.mediaType) && !isManifestType(declared)) {
      throw new UnsupportedError('TSG_UNSUPPORTED', `${source.description} is a ${current.mediaType}, not an image manifest or index`, {
        data: { mediaType: current.mediaType },
      });
    }
    const manifest = validate(manifestSchema, value, `manifest ${current.digest}`);
    return { manifest, fetched: current, chain };
  }
  throw invalidManifest(`${source.description}: indexes nested deeper than ${MAX_INDEX_DEPTH}`);
}


function verifyDescriptor(desc: Descriptor, bytes: Buffer, what: string): void {
  const digest = sha256(bytes);
  if (digest !== desc.digest) {
    throw new IntegrityError('TSG_DIGEST_MISMATCH', `${what} content does not match its digest: expected ${desc.digest}, got ${digest}`, {
      data: { expected: desc.digest, actual: digest },
    });
  }
  if (bytes.length !== desc.size) {
    throw new IntegrityError('TSG_SIZE_MISMATCH', `${what} ${desc.digest} is ${bytes.length} bytes, its descriptor says ${desc.size}`, {
      data: { expected: desc.size, actual: bytes.length },
    });
  }
}


/** The record names the platform this pull wants (an index holds several; a plain manifest has one). */
function platformOk(image: ImageRecord, top: FetchedManifest, platform: Platform, explicit: boolean): boolean {
  // A plain manifest has one platform; it is checked against --platform only when one was asked for.
  if (image.manifestDigest === top.digest && !explicit) return true;
  const [os, architecture, variant] = image.platform.split('/');
  return platformMatches(platform, { os: os ?? '', architecture: architecture ?? '', variant });
}

export async function pullImage(
  source: ImageSource,
  content: ContentStore,
  images: ImageStore,
  options: PullOptions = {},
): Promise<PullResult> {
  const started = performance.now();
  const platform = options.platform ?? hostPlatform();
  const emit = options.onProgress ?? (() => {});
  // One failing layer stops its siblings instead of letting them run on.
  const inner = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, inner.signal]) : inner.signal;
  let bytesFetched = 0;
  let bytesReused = 0;
  let blobsFetched = 0;
  let blobsReused = 0;

  const top = await source.resolve(signal);
  emit({ type: 'resolved', source: source.description, digest: top.digest, mediaType: top.mediaType });
  // Already here (one record read): nothing to fetch, verify or write.
  const present = options.isPresent && images.get(source.imageName);
  if (present && present.digest === top.digest && platformOk(present, top, platform, options.platform !== undefined) && options.isPresent!(present)) {
    const blobs = present.layers.length + 1;
    return {
      name: present.name,
      image: present,
      bytesFetched: 0,
      bytesReused: present.size,
      blobsFetched: 0,
      blobsReused: blobs,
      layersUnpacked: 0,
      layersReused: present.layers.length,
      seconds: (performance.now() - started) / 1000,
      status: 'up-to-date',
    };
  }
  const { manifest, fetched, chain } = await resolveManifest(source, top, platform, signal);
  throwIfAborted(signal);

  const downloads = new Set<Promise<unknown>>();
  const fetchBlob = async (desc: Descriptor, kind: BlobKind, tee?: BlobTee) => {
    const run = fetchBlobOnce(desc, kind, tee);
    downloads.add(run.catch(() => {}));
    return run;
  };
  const fetchBlobOnce = async (desc: Descriptor, kind: BlobKind, tee?: BlobTee) => {
    let started = false;
    const result = await downloadBlob(source, content, desc, {
      signal,
      tee,
      onStart: (offset) => {
        started = true;
        emit({ type: 'blob-start', kind, digest: desc.digest, size: desc.size, offset });
      },
      onProgress: (p) => emit({ type: 'blob-progress', kind, digest: desc.digest, size: desc.size, current: p.current }),
    });
    if (result.existed) {
      blobsReused++;
      bytesReused += desc.size;
      emit({ type: 'blob-exists', kind, digest: desc.digest, size: desc.size });
    } else {
      blobsFetched++;
      bytesFetched += result.fetched;
      bytesReused += result.resumedFrom;
      if (started) emit({ type: 'blob-done', kind, digest: desc.digest, size: desc.size, fetched: result.fetched });
    }
  };

  await fetchBlob(manifest.config, 'config');
  const configBytes = content.readBlob(manifest.config.digest);
  const { imageConfigSchema, parseJson } = await schemas();
  const config: ImageConfig = parseJson(imageConfigSchema, configBytes, `config ${manifest.config.digest}`);
  // docker refuses `--platform` that a single-platform image does not match (an index was matched above).
  if (options.platform && chain.length === 1 && !platformMatches(options.platform, { os: config.os, architecture: config.architecture, variant: config.variant })) {
    const have = formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant });
    throw new NotFoundError('TSG_PLATFORM_NOT_FOUND', `${source.description} is a single-platform image for ${have}, not ${formatPlatform(options.platform)}`, {
      data: { wanted: formatPlatform(options.platform), available: [have] },
    });
  }
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw invalidManifest(
      `manifest ${fetched.digest} lists ${manifest.layers.length} layers but its config has ${diffIds.length} diff_ids`,
    );
  }
  for (const layer of manifest.layers) {
    if (layerCompression(layer.mediaType) === undefined) {
      throw new UnsupportedError('TSG_UNSUPPORTED', `layer ${layer.digest} has unsupported media type ${layer.mediaType}`, {
        data: { mediaType: layer.mediaType },
      });
    }
  }
  const record: ImageRecord = {
    name: source.imageName,
    digest: top.digest,
    manifestDigest: fetched.digest,
    manifestMediaType: fetched.mediaType,
    configDigest: manifest.config.digest,
    platform: formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant }),
    layers: manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: diffIds[i]! })),
    size: manifest.layers.reduce((n, l) => n + l.size, 0),
    source: source.description,
    created: config.created,
    pulledAt: new Date().toISOString(),
  };
  let unpack = { unpacked: 0, reused: 0 };
  try {
    if (options.unpack) {
      // One pass per layer: each download is teed into its unpack (layer-unpack.ts).
      unpack = await options.unpack(record, (i, tee) => fetchBlob(manifest.layers[i]!, 'layer', tee));
    } else {
      await mapLimit(manifest.layers, options.jobs ?? 3, (layer) => fetchBlob(layer, 'layer'));
    }
  } catch (err) {
    inner.abort();
    if (err instanceof TsgraphError && err.code === 'TSG_NO_SPACE') await dropPartials(content, manifest.layers, downloads);
    throw err;
  }
  // Manifests last: a name only ever points at content that is all present.
  for (const m of chain) await content.writeBlob(m.bytes, { digest: m.digest, size: m.bytes.length });
  crashPoint('pull:before-register');
  const before = images.get(record.name);
  images.put(record);
  crashPoint('pull:registered');
  return {
    name: record.name,
    image: record,
    bytesFetched,
    bytesReused,
    blobsFetched,
    blobsReused,
    layersUnpacked: unpack.unpacked,
    layersReused: unpack.reused,
    seconds: (performance.now() - started) / 1000,
    status: blobsFetched > 0 ? 'downloaded' : before?.digest === record.digest && before.manifestDigest === record.manifestDigest ? 'up-to-date' : 'tagged',
  };
}
