/**
 * The OCI archive format: an OCI image layout (`oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`) in a tar, as `skopeo copy … oci-archive:` and
 * `podman save --format oci-archive` write it.
 *
 * Names: each index entry's `io.containerd.image.name` annotation (docker
 * 25+), else `org.opencontainers.image.ref.name` when it is a whole reference
 * (`busybox:1`, `reg/app:tag`); a bare tag (`latest`) becomes
 * `localhost/<fallback>:<tag>`. Saving writes both annotations with the full
 * name, so `skopeo copy oci-archive:x.tar:<full name>` finds each image.
 */
import type { Digest } from '../digest.js';
import { hexOf, sha256 } from '../digest.js';
import { NotFoundError, UnsupportedError } from '../errors.js';
import { MediaType, isIndexType, isManifestType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/schemas.js';
import { type Platform, formatPlatform, platformMatches } from '../platform.js';
import { formatReference, parseReference } from '../reference.js';
import type { FetchedManifest } from '../source/source.js';
import { type ArchiveImage, checkBlobNames, checkDescriptor, checkManifest, configPlatform, jsonBytes, schemas } from './plan.js';
import { type Spool, type SpooledFile, malformed } from './spool.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';
const MAX_INDEX_DEPTH = 3;

/** True when the spooled archive is an OCI layout. */
export function isOciArchive(spool: Spool): boolean {
  return spool.get('oci-layout') !== undefined && spool.get('index.json') !== undefined;
}

/** The image name an index entry's annotations give, normalised; undefined when none. */
export function nameOf(desc: Descriptor, fallback: string): string | undefined {
  const full = desc.annotations?.[CONTAINERD_NAME];
  const ref = desc.annotations?.[REF_NAME];
  const given = full ?? ref;
  if (!given) return undefined;
  let parsed;
  try {
    parsed = parseReference(full || /[:/@]/.test(given) ? given : `localhost/${fallback}:${given}`);
  } catch {
    throw malformed(`index.json names an image ${JSON.stringify(given.slice(0, 200))}, which is not a valid reference`);
  }
  // A digest pins content: `repo@sha256:X` registered for other bytes would lie (docker load: "invalid tag").
  if (parsed.digest) throw malformed(`index.json names an image ${JSON.stringify(given.slice(0, 200))}, which carries a digest (a loaded name must be a tag)`);
  return formatReference(parsed);
}

/** Every image of an OCI archive, checked (only the platform `platform` of an index). */
export async function planOci(spool: Spool, platform: Platform, fallback: string): Promise<ArchiveImage[]> {
  const { indexSchema, manifestSchema, parseJson, parseJsonValue } = await schemas();
  const layout = parseJsonValue(jsonBytes(spool.get('oci-layout')!, 'oci-layout'), 'oci-layout') as { imageLayoutVersion?: unknown } | null;
  if (typeof layout?.imageLayoutVersion !== 'string') throw malformed('oci-layout has no imageLayoutVersion');
  checkBlobNames(spool);
  const lookup = (desc: Descriptor): SpooledFile | undefined => {
    if (!desc.digest.startsWith('sha256:')) throw new UnsupportedError('TSG_UNSUPPORTED', `image archive: digest algorithm of ${desc.digest} is not supported`);
    return spool.get(`blobs/sha256/${hexOf(desc.digest)}`);
  };
  const index = parseJson(indexSchema, jsonBytes(spool.get('index.json')!, 'index.json'), 'index.json');
  if (index.manifests.length === 0) throw malformed('index.json lists no images');
  const images: ArchiveImage[] = [];
  for (const entry of index.manifests) {
    const files: SpooledFile[] = [];
    const children = new Map<Digest, FetchedManifest>();
    const fetch = (desc: Descriptor, what: string): FetchedManifest => {
      const file = checkDescriptor(lookup(desc), desc, what);
      files.push(file);
      const bytes = jsonBytes(file, what);
      return { bytes, digest: sha256(bytes), mediaType: desc.mediaType ?? MediaType.OciManifest };
    };
    const top = fetch(entry, 'manifest');
    let current = top;
    let desc: Descriptor = entry;
    for (let depth = 0; ; depth++) {
      if (depth > MAX_INDEX_DEPTH) throw malformed(`indexes nested deeper than ${MAX_INDEX_DEPTH}`);
      if (!isIndexType(desc.mediaType)) break;
      const inner = parseJson(indexSchema, current.bytes, `index ${desc.digest}`);
      const choice = inner.manifests.find((m) => (isManifestType(m.mediaType) || isIndexType(m.mediaType)) && platformMatches(platform, m.platform));
      if (!choice) {
        throw new NotFoundError('TSG_PLATFORM_NOT_FOUND', `image archive: index ${desc.digest} has no image for ${formatPlatform(platform)}`, {
          data: { wanted: formatPlatform(platform) },
        });
      }
      current = fetch(choice, 'manifest');
      children.set(choice.digest, current);
      desc = choice;
    }
    if (!isManifestType(desc.mediaType)) {
      throw new UnsupportedError('TSG_UNSUPPORTED', `image archive: ${desc.digest} is a ${desc.mediaType}, not an image manifest or index`);
    }
    const manifest = parseJson(manifestSchema, current.bytes, `manifest ${desc.digest}`);
    const checked = await checkManifest(spool, manifest, lookup, `manifest ${desc.digest}`);
    const name = nameOf(entry, fallback);
    images.push({ names: name ? [name] : [], top, children, configDigest: manifest.config.digest, platform: configPlatform(checked.config), files: [...files, ...checked.files] });
  }
  return images;
}

/** One image to write: its name and the stored manifest it resolves to. */
export interface SavedImage {
  name: string;
  manifest: Descriptor;
}

/** index.json for `images` (one entry per name; the same manifest may appear under several). */
export function ociIndex(images: SavedImage[]): Buffer {
  const manifests = images.map((i) => ({
    ...i.manifest,
    annotations: { [CONTAINERD_NAME]: i.name, [REF_NAME]: i.name },
  }));
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
}

export const OCI_LAYOUT = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));
