/**
 * OCI runtime bundles: DIR/config.json whose root is a tsgraph mount.
 * DIR/.tsgraph-bundle names the container, so removing the bundle can
 * unmount and delete exactly what creating it made.
 */
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { BusyError, NotFoundError } from '../errors.js';
import { imageConfigSchema, manifestSchema, parseJson } from '../oci/schemas.js';
import type { Store } from '../store/store.js';
import { writeJsonAtomic } from '../util/fs-atomic.js';
import { mkdirBounded } from '../util/private-root.js';
import { type RuntimeSpec, runtimeSpec } from './spec.js';

const MARKER = '.tsgraph-bundle';
/** The marker is a few dozen bytes; anything bigger is not ours. */
const MAX_MARKER_BYTES = 64 * 1024;

/** Options of {@link createBundle}. */
export interface BundleOptions {
  /** Container name (default: `<image>-<6 hex>`). */
  name?: string | undefined;
  /** The process's argv; default: the image's Entrypoint + Cmd. */
  args?: string[] | undefined;
  /** Ask the runtime for a terminal (`process.terminal`, adds TERM=xterm). */
  terminal?: boolean | undefined;
  /** The container's hostname (default: the container name). */
  hostname?: string | undefined;
  /** Cancels the mount (and the unpack it may need); the bundle is not made. */
  signal?: AbortSignal | undefined;
}

/** What {@link createBundle} made. */
export interface BundleResult {
  /** The bundle directory (absolute): `runc run -b <dir> <id>`. */
  dir: string;
  /** The container made and mounted for it. */
  container: string;
  /** The mounted root filesystem (`root.path` of config.json). */
  rootfs: string;
}

/**
 * Mounts `image` as a new container and writes `dir/config.json`: the process
 * from the image config (Entrypoint + Cmd, Env, WorkingDir, User resolved in
 * the image's /etc/passwd), namespaces and mounts like `runc spec`
 * ({@link runtimeSpec}). `dir` is created (0700) when missing; one that
 * already holds a config.json is refused with TSG_EXISTS. On any failure the
 * container is removed again. Undo it with {@link removeBundle}.
 */
export async function createBundle(store: Store, image: string, dir: string, options: BundleOptions = {}): Promise<BundleResult> {
  const bundle = resolve(dir);
  // Bounded creation (a recursive mkdir spins on some procfs paths); 0700: the bundle is the runtime's.
  mkdirBounded(bundle, 'the bundle directory');
  if (fs.existsSync(join(bundle, 'config.json'))) {
    throw new BusyError('TSG_EXISTS', `${bundle} already holds a config.json`, { data: { dir: bundle } });
  }
  const { container, path } = await store.mount(image, { name: options.name, signal: options.signal });
  try {
    const manifest = parseJson(manifestSchema, store.content.readBlob(container.imageDigest), 'manifest');
    const config = parseJson(imageConfigSchema, store.content.readBlob(manifest.config.digest), 'config');
    const spec: RuntimeSpec = runtimeSpec(config, { rootPath: path, args: options.args, terminal: options.terminal, hostname: options.hostname ?? container.name });
    writeJsonAtomic(join(bundle, MARKER), { container: container.name, root: store.root });
    writeJsonAtomic(join(bundle, 'config.json'), spec);
    return { dir: bundle, container: container.name, rootfs: path };
  } catch (err) {
    await store.removeContainer(container.name).catch(() => {});
    throw err;
  }
}

/**
 * Unmounts and deletes the container of the bundle in `dir`, then the files
 * {@link createBundle} wrote (and `dir` itself when nothing else is left in
 * it). Returns the container's name. TSG_NOT_FOUND when `dir` is no bundle.
 */
export async function removeBundle(store: Store, dir: string): Promise<string> {
  const bundle = resolve(dir);
  let marker: { container?: unknown };
  try {
    const fd = fs.openSync(join(bundle, MARKER), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size > MAX_MARKER_BYTES) throw new Error('not a marker file');
      marker = JSON.parse(fs.readFileSync(fd, 'utf8'));
    } finally {
      fs.closeSync(fd);
    }
    if (typeof marker.container !== 'string') throw new Error('no container named');
  } catch (err) {
    throw new NotFoundError('TSG_NOT_FOUND', `${bundle} is not a tsgraph bundle (no ${MARKER})`, { cause: err, data: { dir: bundle } });
  }
  const name = marker.container as string;
  if (store.containers.get(name)) await store.removeContainer(name);
  fs.rmSync(join(bundle, 'config.json'), { force: true });
  fs.rmSync(join(bundle, MARKER), { force: true });
  try {
    fs.rmdirSync(bundle);
  } catch {
    /* the user keeps other files there */
  }
  return name;
}
