/**
 * OCI runtime bundles: DIR/config.json whose root is a tsgraph mount.
 * DIR/.tsgraph-bundle names the container, so removing the bundle can
 * unmount and delete exactly what creating it made.
 */
import * as fs from 'node:fs';
import { join, resolve } from 'node:path';
import { NotFoundError, TsgraphError } from '../errors.js';
import { imageConfigSchema, manifestSchema, parseJson } from '../oci/schemas.js';
import type { Store } from '../store/store.js';
import { writeJsonAtomic } from '../util/fs-atomic.js';
import { runtimeSpec } from './spec.js';

const MARKER = '.tsgraph-bundle';

export interface BundleOptions {
  name?: string | undefined;
  args?: string[] | undefined;
  terminal?: boolean | undefined;
  hostname?: string | undefined;
}

export async function createBundle(store: Store, image: string, dir: string, options: BundleOptions = {}): Promise<{ dir: string; container: string; rootfs: string }> {
  const bundle = resolve(dir);
  fs.mkdirSync(bundle, { recursive: true });
  if (fs.existsSync(join(bundle, 'config.json'))) throw new TsgraphError('TSG_EXISTS', `${bundle} already holds a config.json`);
  const { container, path } = await store.mount(image, { name: options.name });
  try {
    const manifest = parseJson(manifestSchema, store.content.readBlob(container.imageDigest), 'manifest');
    const config = parseJson(imageConfigSchema, store.content.readBlob(manifest.config.digest), 'config');
    const spec = runtimeSpec(config, { rootPath: path, args: options.args, terminal: options.terminal, hostname: options.hostname ?? container.name });
    writeJsonAtomic(join(bundle, MARKER), { container: container.name, root: store.root });
    writeJsonAtomic(join(bundle, 'config.json'), spec);
    return { dir: bundle, container: container.name, rootfs: path };
  } catch (err) {
    await store.removeContainer(container.name).catch(() => {});
    throw err;
  }
}

/** Unmounts and deletes the bundle's container, then the bundle files. */
export async function removeBundle(store: Store, dir: string): Promise<string> {
  const bundle = resolve(dir);
  let marker: { container: string };
  try {
    marker = JSON.parse(fs.readFileSync(join(bundle, MARKER), 'utf8'));
  } catch {
    throw new NotFoundError('TSG_NOT_FOUND', `${bundle} is not a tsgraph bundle (no ${MARKER})`);
  }
  if (store.containers.get(marker.container)) await store.removeContainer(marker.container);
  fs.rmSync(join(bundle, 'config.json'), { force: true });
  fs.rmSync(join(bundle, MARKER), { force: true });
  try {
    fs.rmdirSync(bundle);
  } catch {
    /* the user keeps other files there */
  }
  return marker.container;
}
