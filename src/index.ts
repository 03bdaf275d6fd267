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
export { CredentialHelper } from './registry/cred-helper.js';
export type { HostConfig, RegistriesConfig } from './registry/registries-config.js';
export type { ImageSource } from './source/source.js';
export { OciLayoutSource } from './source/oci-layout.js';
export { openSource } from './source/parse.js';
export { ImageStore, type ImageRecord, type LayerRecord } from './store/image-store.js';
export type { PullEvent, PullResult } from './store/pull.js';
export { Store, type StoreOptions, type StorePullOptions, type StoreLoginOptions, DEFAULT_ROOT, defaultConfigDirs } from './store/store.js';
export type { MountRequest, MountResult } from './store/mounts.js';
export type { LayerDiff } from './store/differ.js';
export type { CheckOptions, CheckReport } from './store/check.js';
export type { LayerMetaRecord, UnpackEvent } from './store/layer-store.js';
export type { HistoryEntry, ImageSize, LayerSize } from './store/history.js';
export type { ContainerSize, DiskUsage, DiskUsageOptions, DiskUsageProgress } from './store/usage.js';
export type { DiffStreamOptions, TarStreamOptions, TarStreamProgress } from './store/tar-streams.js';
export { login, logout, type LoginOptions } from './registry/login.js';
export { createBundle, removeBundle, type BundleOptions, type BundleResult } from './runtime/bundle.js';
export {
  runtimeSpec,
  resolveUser,
  MAX_TABLE_BYTES,
  type RuntimeSpec,
  type SpecOptions,
  type RuntimeUser,
  type RuntimeMount,
  type RuntimeIdMapping,
} from './runtime/spec.js';
export { timeFirstWrites, summarize, type WriteTiming, type TimingSummary } from './bench/first-write.js';
export {
  benchCopyUp,
  COPY_UP_OPS,
  DEFAULT_SIZES as COPY_UP_DEFAULT_SIZES,
  DEFAULT_TARGETS as COPY_UP_DEFAULT_TARGETS,
  OP_DESCRIPTIONS as COPY_UP_OP_DESCRIPTIONS,
  type CopyUpOptions,
  type CopyUpReport,
  type CopyUpCell,
  type CopyUpResult,
  type CopyUpTargetInfo,
  type CopiedBytes,
  type CopyUpOp,
  type LatencyStats,
} from './bench/copy-up.js';
export { copyUpSvg, copyUpHtml } from './bench/chart.js';
export type { GraphDriver, DriverStatus, DriverCapabilities, LayerPaths } from './drivers/driver.js';
export { createDriver, selectDriver, DRIVER_NAMES } from './drivers/registry.js';
export type {
  MountSpec,
  OverlayMountSpec,
  BindMountSpec,
  AufsMountSpec,
  ContainerMountSpec,
  FsParam,
  MountOptions,
  IdMapping,
  IdmapOption,
} from './mount/mount-spec.js';
export type { CreateContainerRequest } from './store/mounts.js';
export type { ContainerRecord } from './store/containers.js';
export type { CommitOptions, CommitResult } from './store/commit.js';
export type { PushOptions, PushResult, PushEvent } from './store/push.js';
export type { GcReport } from './store/gc.js';
export type { Change, ChangeKind } from './layer/changes.js';
export { saveImages, ARCHIVE_FORMATS, type SaveOptions, type SaveResult } from './archive/save.js';
export { loadArchive, type ArchiveFormat, type LoadOptions, type LoadResult, type LoadedImage } from './archive/load.js';
