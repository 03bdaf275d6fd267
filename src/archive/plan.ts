/**
 * What a load will register, checked in full before anything is stored: each
 * image's manifest (and the index above it), its config and every layer, with
 * digests, sizes and diffIds compared against the spooled bytes. The format
 * readers (oci-archive.ts, docker-archive.ts) build these plans.
 */
import type { Digest } from '../digest.js';
import { IntegrityError, NotFoundError, UnsupportedError } from '../errors.js';
import { layerCompression } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, Manifest } from '../oci/schemas.js';
import type { Platform } from '../platform.js';
import type { FetchedManifest } from '../source/source.js';
import { MAX_JSON_BYTES, type Spool, type SpooledFile, malformed } from './spool.js';

/** One image of an archive, ready to register under `names`. */
export interface ArchiveImage {
  /** Normalised names to register (empty: the loader picks one). */
  names: string[];
  /** What the image resolves to (a manifest, or an index above it). */
  top: FetchedManifest;
  /** Manifests an index names, by digest (for the pull's platform choice). */
  children: Map<Digest, FetchedManifest>;
  /** The config digest (docker's image ID). */
  configDigest: Digest;
  /** The platform its config names (checked against `--platform` before anything is stored). */
  platform: Platform;
  /** Spooled files to commit into the content store. */
  files: SpooledFile[];
}

export const schemas = () => import('../oci/schemas.js');

/** The in-memory bytes of a small spooled file (JSON of the archive). */
export function jsonBytes(file: SpooledFile, what: string): Buffer {
  if (!file.bytes) throw malformed(`${what} (${JSON.stringify(file.name)}) is ${file.size} bytes, more than the ${MAX_JSON_BYTES} allowed`, { name: file.name });
  return file.bytes;
}

/** Refuses `file` unless it is what `desc` promises. */
export function checkDescriptor(file: SpooledFile | undefined, desc: Descriptor, what: string): SpooledFile {
  if (!file) {
    throw new NotFoundError('TSG_BLOB_NOT_FOUND', `image archive: ${what} ${desc.digest} is not in the archive`, { data: { digest: desc.digest } });
  }
  if (file.digest !== desc.digest) {
    throw new IntegrityError('TSG_DIGEST_MISMATCH', `image archive: ${what} ${desc.digest} holds bytes whose digest is ${file.digest}`, {
      data: { expected: desc.digest, actual: file.digest, name: file.name },
    });
  }
  if (file.size !== desc.size) {
    throw new IntegrityError('TSG_SIZE_MISMATCH', `image archive: ${what} ${desc.digest} is ${file.size} bytes, its descriptor says ${desc.size}`, {
      data: { expected: desc.size, actual: file.size, name: file.name },
    });
  }
  return file;
}

/**
 * Checks a manifest's config and layers against the spooled files found by
 * `lookup`; returns the config and the files it uses. Each layer's bytes must
 * be compressed as its media type says and decompress to its config diffId.
 */
export async function checkManifest(
  spool: Spool,
  manifest: Manifest,
  lookup: (desc: Descriptor) => SpooledFile | undefined,
  what: string,
): Promise<{ config: ImageConfig; files: SpooledFile[] }> {
  const { imageConfigSchema, parseJson } = await schemas();
  const configFile = checkDescriptor(lookup(manifest.config), manifest.config, 'config');
  const config = parseJson(imageConfigSchema, jsonBytes(configFile, 'config'), `${what} config ${manifest.config.digest}`);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw malformed(`${what} lists ${manifest.layers.length} layers but its config has ${diffIds.length} diff_ids`);
  }
  const files = [configFile];
  for (const [i, layer] of manifest.layers.entries()) {
    const compression = layerCompression(layer.mediaType);
    if (compression === undefined) {
      throw new UnsupportedError('TSG_UNSUPPORTED', `layer ${layer.digest} has unsupported media type ${layer.mediaType}`, { data: { mediaType: layer.mediaType } });
    }
    const file = checkDescriptor(lookup(layer), layer, 'layer');
    if (file.compression !== compression) {
      throw new IntegrityError('TSG_INVALID_MANIFEST', `image archive: layer ${layer.digest} is declared ${compression} but its bytes are ${file.compression === 'none' ? 'an uncompressed tar' : file.compression}`, {
        data: { digest: layer.digest },
      });
    }
    // Decompressed here, only for files used as layers (spool.ts hashes, never inflates, the rest).
    let diffId: Digest;
    try {
      diffId = await spool.diffIdOf(file);
    } catch (err) {
      if ((err as { code?: string })?.code === 'ABORT_ERR' || (err as { name?: string })?.name === 'AbortError') throw err;
      throw new IntegrityError('TSG_INVALID_MANIFEST', `image archive: layer ${layer.digest} does not decompress: ${(err as Error).message}`, { data: { digest: layer.digest } });
    }
    if (diffId !== diffIds[i]) {
      throw new IntegrityError('TSG_DIGEST_MISMATCH', `image archive: layer ${layer.digest} unpacks to ${diffId}, its config says diff_id ${diffIds[i]}`, {
        data: { expected: diffIds[i], actual: diffId },
      });
    }
    files.push(file);
  }
  return { config, files };
}

/** Every `blobs/sha256/<hex>` of the archive is what its name says, whether an image uses it or not. */
export function checkBlobNames(spool: Spool): void {
  for (const [name, file] of spool.files) {
    const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name);
    if (m && file.digest !== `sha256:${m[1]}`) checkDescriptor(file, { digest: `sha256:${m[1]}` as Digest, size: file.size, mediaType: '' }, `blob ${name}`);
  }
}

/** The platform an image config names. */
export function configPlatform(config: ImageConfig): Platform {
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}
