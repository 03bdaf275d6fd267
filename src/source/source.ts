/**
 * ImageSource: where a pull reads from. A registry and an OCI image layout on
 * disk look the same to the pull code: resolve the reference to a manifest
 * (or index), then read blobs by descriptor, from an offset when resuming.
 * Sources do not verify content; the content store does, for every byte.
 */
import type { Descriptor } from '../oci/schemas.js';
import type { FetchedManifest } from '../registry/client.js';

export type { FetchedManifest } from '../registry/client.js';

export interface BlobStream {
  /** Offset of the first byte of `body`: the asked offset, or 0 if the source restarted. */
  start: number;
  body: NodeJS.ReadableStream;
}

/** Where a pull reads an image from: a registry repository or an OCI layout on disk. */
export interface ImageSource {
  /** Human description (`docker.io/library/busybox:latest`, `oci:/path:tag`). */
  readonly description: string;
  /** Name the pulled image is registered under in the image store. */
  readonly imageName: string;
  /** The manifest or index the reference points at. */
  resolve(signal?: AbortSignal): Promise<FetchedManifest>;
  /** A manifest named by a descriptor inside an index (digest checked by the caller). */
  manifest(desc: Descriptor, signal?: AbortSignal): Promise<FetchedManifest>;
  /** Blob bytes from `offset`. */
  blob(desc: Descriptor, offset: number, signal?: AbortSignal): Promise<BlobStream>;
  /** Releases connections. */
  close(): void;
}
