/**
 * Finding an image by what people type: a full name, a short name
 * (`busybox` → docker.io/library/busybox:latest, or a local image whose last
 * path component it is, like podman's localhost/ search), or a digest prefix.
 */
import { NotFoundError, UsageError } from '../errors.js';
import { formatReference, parseReference } from '../reference.js';
import type { ImageRecord, ImageStore } from './image-store.js';

/**
 * The image `ref` names: full name, short name, or digest prefix (at least
 * 3 hex characters of its ID, the config digest, or of its manifest or
 * index digest). TSG_NOT_FOUND when none, TSG_USAGE when a prefix matches
 * different images. Several names of one image content count as one.
 */
export function findImage(images: ImageStore, ref: string): ImageRecord {
  return resolveImage(images, ref).image;
}

/** What `ref` resolved to (see {@link resolveImage}). */
export interface ImageMatch {
  /** The record to use (the first by name when several names hold the content). */
  image: ImageRecord;
  /** True when `ref` was an ID or digest (prefix) rather than a name. */
  byId: boolean;
  /** By ID: every name of that content (same config digest, docker's image ID); by name: just `image`. */
  names: ImageRecord[];
}

/** Digest prefixes shorter than this are not taken as IDs (a typo of a short name must not pick an image). */
export const MIN_ID_PREFIX = 3;

/**
 * Like {@link findImage}, and says whether `ref` was an ID and which names
 * share the content: an ID (prefix) of an image with several names (tags of
 * one image, a pull by tag and by digest) resolves to it, as docker's IDs do;
 * rmi of such an ID needs to know all of them.
 */
export function resolveImage(images: ImageStore, ref: string): ImageMatch {
  // A full ID or a `sha256:` value is an ID first: no name may shadow it (an archive naming an image
  // `<another image's ID>` must not make `rmi <ID>` or `run <ID>` pick its content).
  const idFirst = ref.startsWith('sha256:') || /^[a-f0-9]{64}$/.test(ref);
  if (idFirst) {
    const match = byId(images, ref);
    if (match) return match;
  }
  const direct = images.get(ref);
  if (direct) return { image: direct, byId: false, names: [direct] };
  const named = findByName(images, ref);
  if (named) return { image: named, byId: false, names: [named] };
  const match = idFirst ? undefined : byId(images, ref);
  if (match) return match;
  throw new NotFoundError('TSG_NOT_FOUND', `image ${ref} is not in the store (pull it first)`, { data: { ref } });
}

/** The image whose ID, manifest or index digest `ref` is (a prefix of); TSG_USAGE when it names several. */
function byId(images: ImageStore, ref: string): ImageMatch | undefined {
  const hex = ref.replace(/^sha256:/, '');
  if (!new RegExp(`^[a-f0-9]{${MIN_ID_PREFIX},64}$`).test(hex)) return undefined;
  const all = images.list();
  const hits = all.filter((i) => [i.digest, i.manifestDigest, i.configDigest].some((d) => d.slice(7).startsWith(hex)));
  const ids = [...new Set(hits.map((i) => i.configDigest))];
  if (ids.length === 1) return { image: hits[0]!, byId: true, names: all.filter((i) => i.configDigest === ids[0]) };
  if (ids.length > 1) {
    throw new UsageError('TSG_USAGE', `${ref} matches ${ids.length} different images (${hits.map((h) => h.name).join(', ')}); give more of the ID`, {
      data: { ref, matches: hits.map((h) => h.name) },
    });
  }
  return undefined;
}

/** A name, normalized (`busybox` → docker.io/library/busybox:latest), or a short name of a local image. */
function findByName(images: ImageStore, ref: string): ImageRecord | undefined {
  if (!ref.startsWith('oci:')) {
    try {
      const normal = parseReference(ref);
      const byName = images.get(formatReference(normal));
      if (byName) return byName;
      // A short name also matches a local image with that last path component (like podman's localhost/ search).
      if (!ref.includes('/')) {
        const suffix = `/${ref.includes(':') || ref.includes('@') ? ref : `${ref}:latest`}`;
        const hits = images.list().filter((i) => i.name.endsWith(suffix));
        if (hits.length === 1) return hits[0]!;
      }
    } catch {
      /* not a reference; maybe a digest prefix */
    }
  }
  return undefined;
}
