/**
 * Mounting images as containers: a writable layer on the image's top layer,
 * mounted through the driver, recorded by name.
 */
import type { ContentStore } from '../content/store.js';
import { hexOf } from '../digest.js';
import type { GraphDriver } from '../drivers/driver.js';
import { isMountPoint } from '../mount/index.js';
import { ContainerStore, type ContainerRecord } from './containers.js';
import type { ImageRecord } from './image-store.js';
import { LayerStore } from './layer-store.js';

export interface MountRequest {
  /** Container name (default: `<image>-<6 hex>`). */
  name?: string | undefined;
  readOnly?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

export interface MountResult {
  container: ContainerRecord;
  /** The root filesystem: overlay's merged dir, or the layer dir itself. */
  path: string;
}

export class Mounter {
  constructor(
    private readonly driver: GraphDriver,
    private readonly layers: LayerStore,
    private readonly containers: ContainerStore,
    private readonly content: ContentStore,
  ) {}

  /** Creates container `name` on `image` and mounts it. */
  async mountImage(image: ImageRecord, req: MountRequest = {}): Promise<MountResult> {
    // Layers may be missing if the image was pulled with --no-unpack or by an older tsgraph.
    await this.layers.unpack(image, this.content, { signal: req.signal });
    const parent = LayerStore.topChainId(image);
    const record: ContainerRecord = {
      name: req.name ?? ContainerStore.defaultName(image.name),
      id: ContainerStore.newId(),
      image: image.name,
      imageDigest: image.manifestDigest,
      parent,
      driver: this.driver.name,
      readOnly: req.readOnly ?? false,
      path: undefined,
      createdAt: new Date().toISOString(),
    };
    this.containers.claim(record);
    try {
      await this.driver.create(record.id, parent ? hexOf(parent) : undefined, { readWrite: true });
      record.path = await this.driver.get(record.id, { readOnly: record.readOnly });
      this.containers.put(record);
      return { container: record, path: record.path };
    } catch (err) {
      if (this.driver.exists(record.id)) await this.driver.remove(record.id).catch(() => {});
      this.containers.remove(record.name);
      throw err;
    }
  }

  /** Mounts an existing container once more (one more reference). */
  async mountContainer(name: string, req: MountRequest = {}): Promise<MountResult> {
    const record = this.containers.require(name);
    record.path = await this.driver.get(record.id, { readOnly: req.readOnly ?? record.readOnly });
    this.containers.put(record);
    return { container: record, path: record.path };
  }

  /** Drops one reference; the driver unmounts at zero. */
  async unmount(name: string): Promise<ContainerRecord> {
    const record = this.containers.require(name);
    await this.driver.put(record.id);
    return record;
  }

  /** Unmounts (every reference) and deletes container `name`. */
  async remove(name: string): Promise<ContainerRecord> {
    const record = this.containers.require(name);
    if (this.driver.exists(record.id)) {
      await this.driver.put(record.id, { all: true });
      await this.driver.remove(record.id);
    }
    this.containers.remove(name);
    return record;
  }

  isMounted(record: ContainerRecord): boolean {
    return record.path !== undefined && isMountPoint(record.path);
  }
}
