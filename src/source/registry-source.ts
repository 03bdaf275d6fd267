/** ImageSource over a registry reference (`docker.io/library/busybox:latest`). */
import { NotFoundError, TsgraphError } from '../errors.js';
import type { Descriptor } from '../oci/schemas.js';
import { type Reference, formatReference, fullName, manifestSelector } from '../reference.js';
import type { RegistryClient } from '../registry/client.js';
import type { BlobStream, FetchedManifest, ImageSource } from './source.js';

export class RegistrySource implements ImageSource {
  readonly description: string;
  readonly imageName: string;

  constructor(
    readonly ref: Reference,
    private readonly client: RegistryClient,
  ) {
    this.description = formatReference(ref);
    // Registered like docker: by name:tag; a digest-only pull is named by its digest.
    this.imageName = ref.tag !== undefined ? `${fullName(ref)}:${ref.tag}` : `${fullName(ref)}@${ref.digest}`;
  }

  async resolve(signal?: AbortSignal): Promise<FetchedManifest> {
    try {
      return await this.client.getManifest(this.ref.registry, this.ref.repository, manifestSelector(this.ref), signal);
    } catch (err) {
      if (err instanceof TsgraphError && err.code === 'TSG_TAG_NOT_FOUND') throw await this.#explainMissing(err, signal);
      throw err;
    }
  }

  /**
   * Registries answer MANIFEST_UNKNOWN both for a missing tag and (distribution
   * 2.x) for a missing repository; the tag list tells them apart and lets the
   * message name tags that do exist.
   */
  async #explainMissing(original: TsgraphError, signal?: AbortSignal): Promise<TsgraphError> {
    let tags: string[];
    try {
      tags = await this.client.listTags(this.ref.registry, this.ref.repository, 100, signal);
    } catch (err) {
      if (err instanceof TsgraphError && err.code === 'TSG_REPO_NOT_FOUND') return err;
      return original;
    }
    if (tags.length === 0) {
      return new NotFoundError('TSG_REPO_NOT_FOUND', `repository ${fullName(this.ref)} not found (it has no tags)`, { data: original.data });
    }
    const shown = tags.slice(0, 5).join(', ') + (tags.length > 5 ? ', …' : '');
    return new NotFoundError('TSG_TAG_NOT_FOUND', `${original.message} (has: ${shown})`, { data: { ...original.data, tags: tags.slice(0, 100) } });
  }

  manifest(desc: Descriptor, signal?: AbortSignal): Promise<FetchedManifest> {
    return this.client.getManifest(this.ref.registry, this.ref.repository, desc.digest, signal);
  }

  blob(desc: Descriptor, offset: number, signal?: AbortSignal): Promise<BlobStream> {
    return this.client.getBlob(this.ref.registry, this.ref.repository, desc.digest, offset, signal);
  }

  close(): void {
    // The client belongs to the Store (shared token cache and connections).
  }
}
