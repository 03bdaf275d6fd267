/** ImageSource over a registry reference (`docker.io/library/busybox:latest`). */
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

  resolve(signal?: AbortSignal): Promise<FetchedManifest> {
    return this.client.getManifest(this.ref.registry, this.ref.repository, manifestSelector(this.ref), signal);
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
