/**
 * tsgraph public API. Re-exports only; see docs/architecture.md for the map.
 */
export * from './errors.js';
export * from './digest.js';
export * from './reference.js';
export * from './platform.js';
export { MediaType, layerCompression, type Compression } from './oci/media-types.js';
export type { Descriptor, Manifest, Index, ImageConfig } from './oci/schemas.js';
export { ContentStore, IngestWriter, type BlobInfo, type ExpectedBlob } from './content/store.js';
export { RegistryClient, type RegistryClientOptions, type FetchedManifest } from './registry/client.js';
export { CredentialStore, type Credentials, parseCreds } from './registry/credentials.js';
export type { ImageSource } from './source/source.js';
export { OciLayoutSource } from './source/oci-layout.js';
export { openSource } from './source/parse.js';
export { ImageStore, type ImageRecord, type LayerRecord } from './store/image-store.js';
export type { PullEvent, PullResult } from './store/pull.js';
export { Store, type StoreOptions, type StorePullOptions, DEFAULT_ROOT } from './store/store.js';
