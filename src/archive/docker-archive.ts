/**
 * The docker-archive format (`docker save`, `podman save`, `skopeo copy …
 * docker-archive:`): `manifest.json` lists each image as
 * `{ Config, RepoTags, Layers }`, paths of files in the same tar; the config
 * is the image config, each layer a tar (uncompressed as docker writes it;
 * gzip or zstd are read too, as docker load does). Docker 25+ puts these files
 * under `blobs/sha256/` next to an OCI `index.json`; manifest.json is read
 * first either way (it has the full names).
 *
 * A docker archive has no manifest: the loader makes an OCI one from the
 * files, deterministically, so loading the same archive twice gives the same
 * image digest. Saving writes layers uncompressed (`<diffId hex>.tar`), the
 * config as `<config hex>.json`, names in full.
 */
import type { Digest } from '../digest.js';
import { hexOf, sha256 } from '../digest.js';
import { NotFoundError, UnsupportedError } from '../errors.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor, Manifest } from '../oci/schemas.js';
import { familiarName, formatReference, parseReference } from '../reference.js';
import { byteStringOfText } from '../util/byte-path.js';
import { type ArchiveImage, checkBlobNames, checkManifest, configPlatform, jsonBytes, schemas } from './plan.js';
import { type Spool, type SpooledFile, archiveName, malformed } from './spool.js';

interface DockerEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

export function isDockerArchive(spool: Spool): boolean {
  return spool.get('manifest.json') !== undefined;
}

function entries(value: unknown): DockerEntry[] {
  if (!Array.isArray(value) || value.length === 0) throw malformed('manifest.json is not a non-empty list of images');
  return value.map((e: unknown, i) => {
    const o = e as Record<string, unknown> | null;
    const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
    if (!o || typeof o.Config !== 'string' || !strings(o.Layers) || !(o.RepoTags == null || strings(o.RepoTags))) {
      throw malformed(`manifest.json entry ${i} needs Config (a path), Layers (paths) and RepoTags (names or null)`);
    }
    if (o.LayerSources && Object.keys(o.LayerSources as object).length > 0) {
      throw new UnsupportedError('TSG_UNSUPPORTED', 'image archive: foreign layers (LayerSources) are not supported');
    }
    return { Config: o.Config, RepoTags: (o.RepoTags as string[] | null) ?? [], Layers: o.Layers as string[] };
  });
}

const layerType = (f: SpooledFile) => (f.compression === 'gzip' ? MediaType.OciLayerGzip : f.compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer);

/** Every image of a docker archive, checked; manifests made from its files. */
export async function planDocker(spool: Spool): Promise<ArchiveImage[]> {
  const { parseJsonValue } = await schemas();
  checkBlobNames(spool);
  const list = entries(parseJsonValue(jsonBytes(spool.get('manifest.json')!, 'manifest.json'), 'manifest.json'));
  const byDigest = new Map<Digest, SpooledFile>();
  const file = (path: string, what: string): SpooledFile => {
    // Entry names are byte strings (one char per byte); manifest.json's paths are UTF-8 text.
    const f = spool.get(archiveName(byteStringOfText(path), `manifest.json ${what} path`));
    if (!f) throw new NotFoundError('TSG_BLOB_NOT_FOUND', `image archive: manifest.json names ${what} ${JSON.stringify(path)}, which is not in the archive`, { data: { path } });
    byDigest.set(f.digest, f);
    return f;
  };
  const images: ArchiveImage[] = [];
  for (const entry of list) {
    const config = file(entry.Config, 'config');
    const layers = entry.Layers.map((l) => file(l, 'layer'));
    const descriptor = (f: SpooledFile, mediaType: string): Descriptor => ({ mediaType, digest: f.digest, size: f.size });
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: descriptor(config, MediaType.OciConfig),
      layers: layers.map((l) => descriptor(l, layerType(l))),
    } as Manifest;
    const checked = await checkManifest(spool, manifest, (d) => byDigest.get(d.digest), `image ${entry.Config}`);
    const bytes = Buffer.from(JSON.stringify(manifest));
    const names = entry.RepoTags.map((t) => {
      let ref;
      try {
        ref = parseReference(t);
      } catch {
        throw malformed(`manifest.json names an image ${JSON.stringify(t.slice(0, 200))}, which is not a valid reference`);
      }
      // A digest pins content: `repo@sha256:X` registered for other bytes would lie (docker load: "invalid tag").
      if (ref.digest) throw malformed(`manifest.json names an image ${JSON.stringify(t.slice(0, 200))}, which carries a digest (a loaded name must be a tag)`);
      return formatReference(ref);
    });
    images.push({
      names,
      top: { bytes, digest: sha256(bytes), mediaType: MediaType.OciManifest },
      children: new Map(),
      configDigest: config.digest,
      platform: configPlatform(checked.config),
      files: checked.files,
    });
  }
  return images;
}

/** One image to write: names, config and layers as stored. */
export interface DockerSavedImage {
  names: string[];
  configDigest: Digest;
  /** diffIds, bottom first. */
  diffIds: Digest[];
}

export const configPath = (d: Digest) => `${hexOf(d)}.json`;
export const layerPath = (diffId: Digest) => `${hexOf(diffId)}.tar`;

/** manifest.json and repositories for `images`. */
export function dockerManifests(images: DockerSavedImage[]): { manifest: Buffer; repositories: Buffer } {
  const manifest = images.map((i) => ({
    Config: configPath(i.configDigest),
    // Full names: docker load reads them as it reads short ones, podman load would put a short one under localhost/.
    RepoTags: i.names.length ? i.names : null,
    Layers: i.diffIds.map(layerPath),
  }));
  // The legacy file docker load still reads when manifest.json is missing: repo → tag → top layer id.
  const repositories: Record<string, Record<string, string>> = {};
  for (const i of images) {
    const top = i.diffIds.at(-1);
    if (!top) continue;
    for (const n of i.names) {
      const ref = parseReference(n);
      const repo = familiarName({ ...ref, tag: undefined, digest: undefined });
      if (ref.tag) (repositories[repo] ??= {})[ref.tag] = hexOf(top);
    }
  }
  return { manifest: Buffer.from(JSON.stringify(manifest)), repositories: Buffer.from(JSON.stringify(repositories)) };
}
