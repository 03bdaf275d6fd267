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
 * const store = await Store.open({ root: '/var/lib/tsgraph' });
 * const { image } = await store.pull('busybox', { onProgress: console.log });
 * store.close();
 * ```
 */
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ContentStore } from '../content/store.js';
import { openPrivateRoot, tightenTop } from '../util/private-root.js';
import { BusyError, NotFoundError, UsageError } from '../errors.js';
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
import { type Platform, parsePlatform } from '../platform.js';
import { CredentialStore, type Credentials } from '../registry/credentials.js';
import type { RetryPolicy } from '../registry/retry.js';
import type { Timeouts } from '../registry/timeouts.js';
import { RegistryClient } from '../registry/client.js';
import { openSource } from '../source/parse.js';
import { type ImageRecord, ImageStore } from './image-store.js';
import { type GraphDriver } from '../drivers/driver.js';
import { selectDriver } from '../drivers/registry.js';
import { LayerStore } from './layer-store.js';
import { ContainerStore, type ContainerRecord } from './containers.js';
import { Mounter, type MountRequest, type MountResult } from './mounts.js';
import { formatReference, parseReference } from '../reference.js';
import { type PullEvent, type PullResult, pullImage } from './pull.js';

export const DEFAULT_ROOT = '/var/lib/tsgraph';

/** How long gc, and the verbs that hold the gc lock shared, wait for each other. */
const GC_LOCK_TIMEOUT_MS = 10 * 60_000;

export interface StoreOptions {
  /** Store root; default `$TSGRAPH_ROOT` or /var/lib/tsgraph. */
  root?: string | undefined;
  /** Registries where http and unverified TLS are allowed (`host[:port]`). */
  insecureRegistries?: string[] | undefined;
  /** Credentials used for every registry (like `--creds`); otherwise docker's config.json. */
  creds?: Credentials | undefined;
  /** Path to docker's config.json (default `$DOCKER_CONFIG/config.json` or ~/.docker/config.json). */
  dockerConfig?: string | undefined;
  /** Graph driver (`overlay`, `vfs`); default `$TSGRAPH_DRIVER`, the root's own, else overlay where it works. */
  driver?: string | undefined;
  /** Directories holding `certs.d/<host>/` (default: tsgraph's config dir, then /etc/tsgraph). */
  configDirs?: string[] | undefined;
  retry?: Partial<RetryPolicy> | undefined;
  /**
   * Repair crash leftovers at open (default true): half-made containers,
   * half-unpacked layers. `tsgraph check` opens with false so that it can
   * report them before `--repair` fixes them.
   */
  repairOnOpen?: boolean | undefined;
  /** Registry connect / response / idle limits (default: `$TSGRAPH_TIMEOUT`, else 30 s / 60 s / 60 s). */
  timeouts?: Partial<Timeouts> | undefined;
  /** Called when a request is retried (network error, 5xx, 429). */
  onRetry?: ((info: { url: string; attempt: number; delayMs: number; reason: string }) => void) | undefined;
}

export interface StorePullOptions {
  /** Unpack layers into the driver after downloading (default true). */
  unpack?: boolean | undefined;
  /** `os/arch[/variant]` or a Platform; default: this host. */
  platform?: string | Platform | undefined;
  /** Parallel layer downloads; default 3. */
  jobs?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((event: PullEvent) => void) | undefined;
}

/** tsgraph's config dir: `$TSGRAPH_CONFIG_DIR`, else `$XDG_CONFIG_HOME/tsgraph`, else ~/.config/tsgraph. */
export function defaultConfigDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const user = env.TSGRAPH_CONFIG_DIR || join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'tsgraph');
  return [user, '/etc/tsgraph'];
}

export class Store {
  readonly root: string;
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly driver: GraphDriver;
  readonly layers: LayerStore;
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
        retry: o.retry,
        timeouts: o.timeouts,
        onRetry: o.onRetry,
      });
    }
    return this.#client;
  }

  /**
   * Finds an image by full name, short name (`busybox` → docker.io/library/busybox:latest),
   * or digest prefix (at least 12 hex characters of its manifest or config digest).
   */
  findImage(ref: string): ImageRecord {
    const direct = this.images.get(ref);
    if (direct) return direct;
    if (!ref.startsWith('oci:')) {
      try {
        const normal = parseReference(ref);
        const byName = this.images.get(formatReference(normal));
        if (byName) return byName;
        // A short name also matches a local image with that last path component (like podman's localhost/ search).
        if (!ref.includes('/')) {
          const suffix = `/${ref.includes(':') || ref.includes('@') ? ref : `${ref}:latest`}`;
          const hits = this.images.list().filter((i) => i.name.endsWith(suffix));
          if (hits.length === 1) return hits[0]!;
        }
      } catch {
        /* not a reference; maybe a digest prefix */
      }
    }
    const hex = ref.replace(/^sha256:/, '');
    if (/^[a-f0-9]{12,64}$/.test(hex)) {
      const hits = this.images.list().filter((i) => [i.digest, i.manifestDigest, i.configDigest].some((d) => d.slice(7).startsWith(hex)));
      if (hits.length === 1) return hits[0]!;
      if (hits.length > 1) throw new UsageError('TSG_USAGE', `${ref} matches ${hits.length} images; give more of the digest`);
    }
    throw new NotFoundError('TSG_NOT_FOUND', `image ${ref} is not in the store (pull it first)`, { data: { ref } });
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

  /** Removes layers and blobs that no image or container references. */
  async gc(options: { dryRun?: boolean; lockTimeoutMs?: number } = {}): Promise<GcReport> {
    // Fair: new pulls and mounts queue behind a waiting gc instead of starving it.
    const lock = await acquireFairLock(join(this.root, 'locks'), 'gc', {
      timeoutMs: options.lockTimeoutMs ?? GC_LOCK_TIMEOUT_MS,
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

  /** Changes of container `name` against its image (and how they were found). */
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

  /** Closes registry connections. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}
