/**
 * Store: the facade the CLI and container runtimes use. It owns a root
 * directory (default `/var/lib/tsgraph`, or `$TSGRAPH_ROOT`):
 *
 *   content/   blobs and ingests (ContentStore)
 *   meta/      image records (ImageStore)
 *   locks/     flock files
 *
 * @example
 * ```ts
 * await using store = await Store.open({ root: '/var/lib/tsgraph' });
 * const { image } = await store.pull('busybox', { onProgress: console.log });
 * ```
 * docs/library.md walks through a runtime's whole cycle.
 */
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { ContentStore } from '../content/store.js';
import { openPrivateRoot, tightenTop } from '../util/private-root.js';
import { BusyError, NotFoundError } from '../errors.js';
import { hexOf, sha256Hex } from '../digest.js';
import { acquireFairLock, acquireLock, type FileLock } from './lock.js';
import type { GcReport } from './gc.js';
import { crashPoint } from '../util/crash-point.js';
import type { CheckOptions, CheckReport } from './check.js';
import type { LayerDirs } from '../drivers/layer-dirs.js';
import type { CommitOptions, CommitResult } from './commit.js';
import type { LayerDiff } from './differ.js';
// The verbs' own modules (gc, check, commit, diff, push) load on first use: a process that
// only pulls or mounts does not pay for them at start.
import type { PushOptions, PushResult } from './push.js';
import type { HistoryEntry, ImageSize } from './history.js';
import type { ImageConfig } from '../oci/schemas.js';
import type { runtimeSpec } from '../runtime/spec.js';
import type { ContainerSize, DiskUsage, DiskUsageOptions } from './usage.js';
import type { DiffStreamOptions, TarStreamOptions } from './tar-streams.js';
import type { Readable } from 'node:stream';
import type { LoginOptions } from '../registry/login.js';
import { parsePlatform } from '../platform.js';
import { CredentialStore, type Credentials } from '../registry/credentials.js';
import { RegistryClient } from '../registry/client.js';
import { openSource } from '../source/parse.js';
import { type ImageRecord, ImageStore } from './image-store.js';
import { type GraphDriver } from '../drivers/driver.js';
import { selectDriver } from '../drivers/registry.js';
import { LayerStore } from './layer-store.js';
import { ContainerStore, type ContainerRecord } from './containers.js';
import { type CreateContainerRequest, Mounter, type MountRequest, type MountResult } from './mounts.js';
import type { ContainerMountSpec, MountOptions } from '../mount/mount-spec.js';
import { formatReference, parseReference } from '../reference.js';
import { findImage } from './find-image.js';
import { type PullResult, pullImage } from './pull.js';
import { DEFAULT_ROOT, type StoreLoginOptions, type StoreOptions, type StorePullOptions, defaultConfigDirs } from './store-options.js';

export { DEFAULT_ROOT, defaultConfigDirs, type StoreLoginOptions, type StoreOptions, type StorePullOptions } from './store-options.js';


/** How long gc, and the verbs that hold the gc lock shared, wait for each other. */
const GC_LOCK_TIMEOUT_MS = 10 * 60_000;

/**
 * A tsgraph store. Open it with {@link Store.open}; close it with
 * `await store.close()` or `await using store = await Store.open(…)`.
 */
export class Store implements AsyncDisposable {
  /** The store root (resolved: no symlink in it). */
  readonly root: string;
  /** Blobs by digest. */
  readonly content: ContentStore;
  /** Image names. */
  readonly images: ImageStore;
  /** The graph driver layers live in. */
  readonly driver: GraphDriver;
  /** Unpacked image layers. */
  readonly layers: LayerStore;
  /** Container records. */
  readonly containers: ContainerStore;
  readonly #mounter: Mounter;
  readonly #options: StoreOptions;
  #client: RegistryClient | undefined;

  private constructor(root: string, options: StoreOptions, driver: GraphDriver) {
    this.root = root;
    this.#options = options;
    this.content = new ContentStore(root);
    this.images = new ImageStore(root);
    this.driver = driver;
    this.layers = new LayerStore(root, driver);
    this.containers = new ContainerStore(root);
    this.#mounter = new Mounter(driver, this.layers, this.containers, this.content);
  }

  /** Opens (creating when needed) the store at `options.root`. */
  static async open(options: StoreOptions = {}): Promise<Store> {
    const given = resolve(options.root ?? process.env.TSGRAPH_ROOT ?? DEFAULT_ROOT);
    // Private (0700, ours), created without recursive mkdir (it spins on procfs): util/private-root.ts.
    openPrivateRoot(given);
    // Mount points are compared with mountinfo, which lists resolved paths: a root reached through a symlink is resolved once, here.
    const root = fs.realpathSync(given);
    const driver = await selectDriver(root, options.driver ?? (process.env.TSGRAPH_DRIVER || undefined));
    const store = new Store(root, options, driver);
    tightenTop(root); // driver and meta dirs made just now
    // A crash mid-mount leaves container records still `creating`, a crash mid-unpack layers marked incomplete: remove them now.
    if (options.repairOnOpen !== false) {
      await store.#mounter.repair();
      await store.layers.repair();
    }
    return store;
  }

  /**
   * Pulls `ref` (a registry reference like `busybox`, `host:5000/app:1`,
   * `repo@sha256:…`, or `oci:DIR[:TAG]`) into the content store and registers
   * it. Blobs already present are not fetched again; interrupted blobs resume.
   */
  async pull(ref: string, options: StorePullOptions = {}): Promise<PullResult> {
    const source = openSource(ref, () => this.registry);
    try {
      const platform = typeof options.platform === 'string' ? parsePlatform(options.platform) : options.platform;
      // Under the gc lock (shared): gc must not sweep blobs stored before the name is registered.
      return await this.#shared(() => pullImage(source, this.content, this.images, {
        platform,
        jobs: options.jobs,
        signal: options.signal,
        onProgress: options.onProgress,
        // Unpack before the name is registered: a layer that fails its diffId check registers nothing.
        unpack:
          options.unpack === false
            ? undefined
            : (image, fetch) => this.layers.unpack(image, this.content, { signal: options.signal, onEvent: options.onProgress, fetch, jobs: options.jobs }),
        isPresent: (image) => this.#isPresent(image, options.unpack !== false),
      }));
    } finally {
      source.close();
    }
  }

  /**
   * A registered image needs nothing from a pull: its blobs are stored and
   * (when unpacking) its top layer is complete, which a complete layer's
   * whole chain is (a layer is marked complete only after its parents).
   * A few stats and one layer record: the re-pull fast path.
   */
  #isPresent(image: ImageRecord, unpack: boolean): boolean {
    const blobs = [image.digest, image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
    if (!blobs.every((d) => this.content.has(d))) return false;
    const top = LayerStore.topChainId(image);
    return !unpack || top === undefined || this.layers.isComplete(top);
  }

  /** The registry client of this store (one token cache, one connection pool). */
  get registry(): RegistryClient {
    if (!this.#client) {
      const o = this.#options;
      this.#client = new RegistryClient({
        insecureRegistries: o.insecureRegistries,
        configDirs: o.configDirs ?? defaultConfigDirs(),
        credentials: new CredentialStore({ creds: o.creds, dockerConfig: o.dockerConfig }),
        registries: o.registries,
        retry: o.retry,
        timeouts: o.timeouts,
        onRetry: o.onRetry,
      });
    }
    return this.#client;
  }

  /**
   * Finds an image by full name, short name (`busybox` → docker.io/library/busybox:latest),
   * or ID / digest prefix (at least 3 hex characters of its config digest, docker's image ID, or of
   * its manifest or index digest; several names of one content are one image: find-image.ts).
   */
  findImage(ref: string): ImageRecord {
    return findImage(this.images, ref);
  }

  /**
   * Mounts `target`: an existing container by name, or an image (a new
   * container layer on it). Returns the root path and the container record.
   */
  async mount(target: string, options: MountRequest = {}): Promise<MountResult> {
    return this.#shared(async () => {
      if (this.containers.get(target)) return this.#mounter.mountContainer(target, options);
      // The image's lock, shared, until its container is recorded: rmi waits for it and then sees the container.
      const { image, lock } = await this.#lockImage(target, true, options.signal);
      try {
        return await this.#mounter.mountImage(image, options);
      } finally {
        lock.release();
      }
    });
  }

  /**
   * Creates a container layer on image `image` without mounting it (the
   * image is unpacked first when needed; same locks and crash safety as
   * mount). Mount it with `mount(name)`, or take `mountSpec(name)` and
   * mount it yourself.
   */
  async createContainer(image: string, options: CreateContainerRequest = {}): Promise<ContainerRecord> {
    return this.#shared(async () => {
      const { image: record, lock } = await this.#lockImage(image, true, options.signal);
      try {
        return await this.#mounter.createContainer(record, options);
      } finally {
        lock.release();
      }
    });
  }

  /**
   * Container `name`'s mount as data, for a runtime that mounts it in its
   * own mount namespace: type, source, fs-context parameters (and a classic
   * option string when it fits one page), the layer dirs. Mounts nothing;
   * a mount the runtime makes is its own to unmount before `removeContainer`.
   */
  async mountSpec(name: string, options: MountOptions = {}): Promise<ContainerMountSpec> {
    return this.#mounter.spec(name, options);
  }

  /** Releases one mount of container `name` (unmounted when none are left). */
  async umount(name: string): Promise<ContainerRecord> {
    return this.#mounter.unmount(name);
  }

  /** Unmounts and deletes container `name` (its layer and record). */
  async removeContainer(name: string): Promise<ContainerRecord> {
    return this.#shared(() => this.#mounter.remove(name));
  }

  /**
   * Removes the name `ref` from the store (docker rmi). Refused with
   * TSG_IN_USE while a container was made from it, unless `force`. Layers
   * and blobs stay until `gc`.
   */
  async removeImage(ref: string, options: { force?: boolean } = {}): Promise<ImageRecord> {
    // Exclusive: a `mount` of this image still unpacking holds it shared and has not recorded its container yet.
    const { image, lock } = await this.#lockImage(ref, false);
    try {
      return this.#removeImageLocked(image, options);
    } finally {
      lock.release();
    }
  }

  #removeImageLocked(image: ImageRecord, options: { force?: boolean }): ImageRecord {
    const users = this.containers.list().filter((c) => c.image === image.name || c.imageDigest === image.manifestDigest);
    if (users.length && !options.force) {
      throw new BusyError('TSG_IN_USE', `image ${image.name} is used by container(s) ${users.map((u) => u.name).join(', ')} (rm them, or --force)`, {
        data: { image: image.name, containers: users.map((u) => u.name) },
      });
    }
    crashPoint('rmi:before-remove');
    this.images.remove(image.name);
    return image;
  }

  /**
   * Compares records with the disk and the mount table (see check.ts); with
   * `repair`, fixes what it can. Holds the gc lock exclusively: no pull,
   * mount or commit is half-way while it looks.
   */
  async check(options: CheckOptions & { lockTimeoutMs?: number } = {}): Promise<CheckReport> {
    const lock = await acquireFairLock(join(this.root, 'locks'), 'gc', {
      timeoutMs: options.lockTimeoutMs ?? GC_LOCK_TIMEOUT_MS,
      what: `the gc lock of ${this.root} (pulls, mounts, commits, pushes and rm hold it while they run)`,
    });
    try {
      const parts = { root: this.root, content: this.content, images: this.images, layers: this.layers, containers: this.containers, mounter: this.#mounter };
      const { checkStore } = await import('./check.js');
      return await checkStore({ ...parts, dirs: (this.driver as { dirs?: LayerDirs }).dirs }, options);
    } finally {
      lock.release();
    }
  }

  /** Removes layers and blobs that no image or container references (`signal` stops it between layers and blobs). */
  async gc(options: { dryRun?: boolean; lockTimeoutMs?: number; signal?: AbortSignal | undefined } = {}): Promise<GcReport> {
    // Fair: new pulls and mounts queue behind a waiting gc instead of starving it.
    const lock = await acquireFairLock(join(this.root, 'locks'), 'gc', {
      timeoutMs: options.lockTimeoutMs ?? GC_LOCK_TIMEOUT_MS,
      signal: options.signal,
      what: `the gc lock of ${this.root} (pulls, mounts, commits, pushes and rm hold it while they run)`,
    });
    try {
      const { collectGarbage } = await import('./gc.js');
      return await collectGarbage({ content: this.content, images: this.images, layers: this.layers, containers: this.containers }, options);
    } finally {
      lock.release();
    }
  }

  /** Pushes image `ref` to `destination` (default: its own name). */
  async push(ref: string, destination?: string, options: PushOptions = {}): Promise<PushResult> {
    const image = this.findImage(ref);
    const { pushImage } = await import('./push.js');
    return this.#shared(() => pushImage({ content: this.content, images: this.images, client: this.registry }, image, destination ?? image.name, options));
  }

  /** Commits container `name` as image `ref`. */
  async commit(name: string, ref: string, options: CommitOptions = {}): Promise<CommitResult> {
    const { commitContainer } = await import('./commit.js');
    // The container's owner lock, shared: an `rm` of it waits until the commit is done.
    return this.#shared(() =>
      this.#mounter.using(name, (container) => commitContainer({ content: this.content, images: this.images, layers: this.layers }, container, ref, options)),
    );
  }

  /**
   * Changes of container `name` against its image (and how they were found).
   * Call `release()` on the result when done: a naive overlay diff holds read-only mounts.
   */
  async diff(name: string): Promise<LayerDiff> {
    const c = this.containers.require(name);
    const { diffLayer } = await import('./differ.js');
    return diffLayer(this.driver, c.id, c.parent ? hexOf(c.parent) : undefined);
  }

  /** Runs `fn` holding the gc lock shared: gc waits until it is done. */
  async #shared<T>(fn: () => Promise<T>): Promise<T> {
    const lock = await acquireFairLock(join(this.root, 'locks'), 'gc', {
      shared: true,
      timeoutMs: GC_LOCK_TIMEOUT_MS,
      what: `the gc lock of ${this.root} (a gc is running or waiting)`,
    });
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }

  /**
   * Finds image `ref` and takes its lock (`locks/image-<sha256 of name>`):
   * shared by mounts creating a container from it, exclusive by rmi. The
   * record is read again under the lock (rmi may have removed it meanwhile).
   */
  async #lockImage(ref: string, shared: boolean, signal?: AbortSignal): Promise<{ image: ImageRecord; lock: FileLock }> {
    const found = this.findImage(ref);
    const lock = await acquireLock(join(this.root, 'locks'), `image-${sha256Hex(found.name)}`, {
      shared,
      signal,
      timeoutMs: GC_LOCK_TIMEOUT_MS,
      what: `image ${found.name} (in use by a mount or rmi)`,
    });
    const image = this.images.reread(found); // unchanged: the same object, not parsed again
    if (!image) {
      lock.release();
      throw new NotFoundError('TSG_NOT_FOUND', `image ${ref} is not in the store (pull it first)`, { data: { ref } });
    }
    return { image, lock };
  }

  /** Container layers with their mount state. */
  listContainers(): Array<ContainerRecord & { mounted: boolean }> {
    return this.containers.list().map((c) => ({ ...c, mounted: this.#mounter.isMounted(c) }));
  }

  /** Every registered image, sorted by name. */
  listImages(): ImageRecord[] {
    return this.images.list();
  }

  /**
   * Gives `source`'s image the name `target` too (docker tag): same content,
   * nothing copied. A `target` that names another image is moved.
   */
  async tag(source: string, target: string): Promise<ImageRecord> {
    const name = formatReference(parseReference(target));
    return this.#shared(async () => {
      // The new name's lock, exclusive: as rmi of it, never half-way through a mount creating a container from it.
      const lock = await acquireLock(join(this.root, 'locks'), `image-${sha256Hex(name)}`, { timeoutMs: GC_LOCK_TIMEOUT_MS, what: `image ${name} (in use by a mount or rmi)` });
      try {
        const record: ImageRecord = { ...this.findImage(source), name, pulledAt: new Date().toISOString() };
        this.images.put(record);
        return record;
      } finally {
        lock.release();
      }
    });
  }

  /** Image `ref`'s config (run config: Entrypoint, Cmd, Env, User…; rootfs; history), as for {@link runtimeSpec}. */
  async imageConfig(ref: string): Promise<ImageConfig> {
    const { imageConfig } = await import('./history.js');
    return imageConfig(this.findImage(ref), this.content);
  }

  /** Image `ref`'s history, newest step first, layers with their sizes (docker history). */
  async history(ref: string): Promise<HistoryEntry[]> {
    const { imageHistory } = await import('./history.js');
    return imageHistory(this.findImage(ref), this.content, this.layers);
  }

  /** Image `ref`'s size: compressed (its blobs) and unpacked (its layers), whole and per layer. */
  async imageSize(ref: string): Promise<ImageSize> {
    const { imageSize } = await import('./history.js');
    return imageSize(this.findImage(ref), this.layers);
  }

  /** The bytes of container `name`'s own changes (docker's SizeRw). */
  async containerSize(name: string): Promise<ContainerSize> {
    const { containerSize } = await import('./usage.js');
    return this.#mounter.using(name, (c) => containerSize(this.driver, c));
  }

  /** What images, layers, containers and blobs take, and what is reclaimable (docker system df). */
  async diskUsage(options: DiskUsageOptions = {}): Promise<DiskUsage> {
    const { containerSize, diskUsage } = await import('./usage.js');
    return diskUsage({
      content: this.content, images: this.images, layers: this.layers, containers: this.containers,
      isMounted: (c) => this.#mounter.isMounted(c),
      // Being made or removed right now: not counted.
      sizeOf: (c) => this.#mounter.using(c.name, (r) => containerSize(this.driver, r)).catch(() => undefined),
    }, options);
  }

  /**
   * Container `name`'s changes as an OCI layer tar stream (what `tsgraph diff
   * -o` writes; with `compression`, the blob commit would store). `rm` of the
   * container waits until the stream closes: read it to the end or destroy it.
   */
  async diffStream(name: string, options: DiffStreamOptions = {}): Promise<Readable> {
    const { containerDiffStream, heldStream } = await import('./tar-streams.js');
    return heldStream((fn) => this.#mounter.using(name, fn), (c) => containerDiffStream(this.driver, c, options));
  }

  /**
   * Container `name`'s whole merged tree as a flat tar stream (docker
   * export). Read through no-follow dirfds: a symlink the container made is
   * exported as a symlink, never followed. Close it as {@link Store.diffStream}.
   */
  async exportContainer(name: string, options: TarStreamOptions = {}): Promise<Readable> {
    const { containerExportStream, heldStream } = await import('./tar-streams.js');
    return heldStream((fn) => this.#mounter.using(name, fn), (c) => containerExportStream(this.driver, c, options));
  }

  /**
   * Checks `creds` with `registry` (through this store's registry settings:
   * insecure registries, certs.d, timeouts) and saves them in docker's
   * config.json (this store's `dockerConfig`). Returns the file's path.
   */
  async login(registry: string, creds: Credentials, options: StoreLoginOptions = {}): Promise<string> {
    const { login } = await import('../registry/login.js');
    const o = this.#options;
    const settings: LoginOptions = { insecureRegistries: o.insecureRegistries, configDirs: o.configDirs ?? defaultConfigDirs(), registries: o.registries, timeouts: o.timeouts, retry: o.retry, onRetry: o.onRetry };
    return login(registry, creds, { ...settings, configPath: o.dockerConfig, signal: options.signal });
  }

  /** Removes `registry`'s stored credentials from docker's config.json; false when there were none. */
  async logout(registry: string): Promise<boolean> {
    const { logout } = await import('../registry/login.js');
    return this.#options.dockerConfig ? logout(registry, this.#options.dockerConfig) : logout(registry);
  }

  /** Closes registry connections. The store can be used again after (it reconnects). */
  async close(): Promise<void> {
    this.#client?.close();
    this.#client = undefined;
  }

  /** `await using store = await Store.open(…)`: closes the store at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
