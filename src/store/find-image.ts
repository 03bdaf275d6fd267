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
 * 12 hex characters of its manifest or config digest). TSG_NOT_FOUND when
 * none, TSG_USAGE when a prefix matches several.
 */
export function findImage(images: ImageStore, ref: string): ImageRecord {
  const direct = images.get(ref);
  if (direct) return direct;
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
  const hex = ref.replace(/^sha256:/, '');
  if (/^[a-f0-9]{12,64}$/.test(hex)) {
    const hits = images.list().filter((i) => [i.digest, i.manifestDigest, i.configDigest].some((d) => d.slice(7).startsWith(hex)));
    if (hits.length === 1) return hits[0]!;
    if (hits.length > 1) throw new UsageError('TSG_USAGE', `${ref} matches ${hits.length} images; give more of the digest`);
  }
  throw new NotFoundError('TSG_NOT_FOUND', `image ${ref} is not in the store (pull it first)`, { data: { ref } });
}
