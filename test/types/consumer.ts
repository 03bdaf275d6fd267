/**
 * A consumer of the public surface, written the way a container runtime
 * uses it. Never run: `tsc -p test/types/tsconfig.json` compiles it against
 * `'tsgraph'` (mapped to src/index.ts), and test/unit/library-surface.test.ts
 * runs that, so an export that disappears or changes type fails the suite.
 * Exact types are pinned with Equal<…>; calls are written as a runtime would.
 */
import type { Readable } from 'node:stream';
import {
  AuthError,
  BusyError,
  InterruptedError,
  type BundleOptions,
  type BundleResult,
  type ContainerMountSpec,
  type ContainerRecord,
  type ContainerSize,
  type CreateContainerRequest,
  DEFAULT_ROOT,
  type DiffStreamOptions,
  type DiskUsage,
  type DiskUsageOptions,
  ERROR_CLASSES,
  ERROR_CODES,
  type ErrorCategory,
  type ErrorCode,
  type ErrorCodeInfo,
  type ErrorCodeOf,
  type FsParam,
  type HistoryEntry,
  type IdMapping,
  type IdmapOption,
  type ImageConfig,
  type ImageRecord,
  type ImageSize,
  IntegrityError,
  type LayerSize,
  type LoginOptions,
  type MountOptions,
  type MountResult,
  NotFoundError,
  type PullEvent,
  type PullResult,
  RegistryError,
  ResourceError,
  type RuntimeSpec,
  type SpecOptions,
  Store,
  type StoreOptions,
  type TarStreamOptions,
  type TarStreamProgress,
  TsgraphError,
  UnsafeError,
  UnsupportedError,
  UsageError,
  createBundle,
  errorFromCode,
  login,
  logout,
  removeBundle,
  runtimeSpec,
} from 'tsgraph';

/** True when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

// Opening and closing: AsyncDisposable, close() async.
assertType<Equal<Parameters<typeof Store.open>, [options?: StoreOptions]>>();
assertType<Equal<ReturnType<typeof Store.open>, Promise<Store>>>();
assertType<Equal<ReturnType<Store['close']>, Promise<void>>>();
assertType<Equal<ReturnType<Store[typeof Symbol.asyncDispose]>, Promise<void>>>();
const disposable: AsyncDisposable = null as unknown as Store;
void disposable;
assertType<Equal<typeof DEFAULT_ROOT, '/var/lib/tsgraph'>>();

// The runtime's calls, pinned.
assertType<Equal<Store['createContainer'], (image: string, options?: CreateContainerRequest) => Promise<ContainerRecord>>>();
assertType<Equal<Store['mountSpec'], (name: string, options?: MountOptions) => Promise<ContainerMountSpec>>>();
assertType<Equal<Store['tag'], (source: string, target: string) => Promise<ImageRecord>>>();
assertType<Equal<Store['history'], (ref: string) => Promise<HistoryEntry[]>>>();
assertType<Equal<Store['imageSize'], (ref: string) => Promise<ImageSize>>>();
assertType<Equal<Store['imageConfig'], (ref: string) => Promise<ImageConfig>>>();
assertType<Equal<Store['containerSize'], (name: string) => Promise<ContainerSize>>>();
assertType<Equal<Store['diskUsage'], (options?: DiskUsageOptions) => Promise<DiskUsage>>>();
assertType<Equal<Store['diffStream'], (name: string, options?: DiffStreamOptions) => Promise<Readable>>>();
assertType<Equal<Store['exportContainer'], (name: string, options?: TarStreamOptions) => Promise<Readable>>>();
assertType<Equal<ReturnType<Store['login']>, Promise<string>>>();
assertType<Equal<Awaited<ReturnType<Store['logout']>>, boolean>>();
assertType<Equal<ReturnType<typeof login>, Promise<string>>>();
assertType<Equal<Parameters<typeof login>[2], LoginOptions | undefined>>();
assertType<Equal<Awaited<ReturnType<typeof logout>>, boolean>>();
assertType<Equal<typeof createBundle, (store: Store, image: string, dir: string, options?: BundleOptions) => Promise<BundleResult>>>();
assertType<Equal<typeof removeBundle, (store: Store, dir: string) => Promise<string>>>();
assertType<Equal<typeof runtimeSpec, (config: ImageConfig, options: SpecOptions) => RuntimeSpec>>();

// Shapes a runtime reads.
assertType<Equal<DiffStreamOptions['compression'], 'gzip' | 'zstd' | 'none' | undefined>>();
assertType<Equal<TarStreamProgress, { bytes: number; done: boolean }>>();
assertType<Equal<LayerSize['unpackedBytes'], number | undefined>>();
assertType<Equal<HistoryEntry['layer'], LayerSize | undefined>>();
assertType<Equal<ContainerMountSpec['options'], FsParam[]>>();
assertType<Equal<ContainerMountSpec['type'], 'overlay' | 'bind' | 'aufs'>>();
assertType<Equal<ContainerMountSpec['data'], string | undefined>>();
assertType<Equal<MountOptions['idmap'], IdmapOption | undefined>>();
assertType<Equal<IdMapping, { containerId: number; hostId: number; size: number }>>();
assertType<Equal<DiskUsage['reclaimableBytes'], number>>();
assertType<Equal<RuntimeSpec['process']['args'], string[]>>();

// Errors: one union, one table, one class per category.
assertType<Equal<keyof typeof ERROR_CODES, ErrorCode>>();
assertType<Equal<(typeof ERROR_CODES)[ErrorCode], ErrorCodeInfo>>();
assertType<Equal<ErrorCodeOf<'busy'>, 'TSG_IN_USE' | 'TSG_EXISTS' | 'TSG_LOCKED'>>();
assertType<Equal<ErrorCodeOf<'interrupted'>, 'TSG_ABORTED'>>();
assertType<Equal<ErrorCodeOf<'integrity'>, 'TSG_DIGEST_MISMATCH' | 'TSG_SIZE_MISMATCH' | 'TSG_INVALID_MANIFEST'>>();
assertType<Equal<keyof typeof ERROR_CLASSES, ErrorCategory>>();
assertType<Equal<ReturnType<typeof errorFromCode>, TsgraphError>>();
assertType<Equal<BusyError['code'], ErrorCodeOf<'busy'>>>();
assertType<Equal<RegistryError['temporary'], boolean>>();
const classes: Array<new (...args: never[]) => TsgraphError> = [UsageError, NotFoundError, AuthError, IntegrityError, RegistryError, UnsupportedError, UnsafeError, BusyError, ResourceError, InterruptedError];
void classes;

/** A runtime's cycle, as types: never called. */
export async function runtime(signal: AbortSignal): Promise<void> {
  await using store = await Store.open({ root: '/var/lib/tsgraph', driver: 'overlay' });
  const events: PullEvent[] = [];
  const pulled: PullResult = await store.pull('busybox', { signal, onProgress: (e) => events.push(e) });
  const container = await store.createContainer(pulled.image.name, { name: 'c1', signal, onProgress: (e) => void e.type });
  const spec = await store.mountSpec(container.name, { readOnly: false, overlayOptions: ['volatile'], idmap: { uidMap: [{ containerId: 0, hostId: 100000, size: 65536 }], gidMap: [] } });
  const args: string[] = spec.options.map(([k, v]) => (v === null ? k : `${k}=${v}`));
  void args;
  const mounted: MountResult = await store.mount(container.name);
  const config: RuntimeSpec = runtimeSpec(await store.imageConfig(container.image), { rootPath: mounted.path, args: ['sh'] });
  config.process.env.push('A=b');
  const tar: Readable = await store.diffStream(container.name, { compression: 'zstd', signal, onProgress: (p) => void p.bytes });
  tar.destroy();
  (await store.exportContainer(container.name, { signal })).resume();
  const committed = await store.commit(container.name, 'localhost/x:1', { compress: 'gzip', signal, onProgress: (p) => void p.bytes });
  await store.tag(committed.image.name, 'localhost/x:latest');
  const history = await store.history('localhost/x:latest');
  const created: Array<string | undefined> = history.map((h) => h.createdBy);
  void created;
  const usage = await store.diskUsage({ signal, containerSizes: true, onProgress: (p) => void p.step });
  const free: number = usage.reclaimableBytes + usage.images.reclaimableBytes;
  void free;
  const size: number | undefined = (await store.imageSize('busybox')).unpackedBytes;
  void size;
  await store.umount(container.name);
  await store.removeContainer(container.name);
  await store.gc({ signal });
  try {
    await store.removeImage('busybox');
  } catch (err) {
    if (err instanceof BusyError && err.code === 'TSG_IN_USE') return;
    if (err instanceof TsgraphError) {
      const info: ErrorCodeInfo = ERROR_CODES[err.code];
      void info.exitCode;
    }
    throw err;
  }
}
