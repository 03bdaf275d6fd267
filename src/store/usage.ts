/**
 * Disk usage, like `docker system df`: what images, layers, containers and
 * the content store take, and what could be reclaimed. A snapshot read
 * without the gc lock: a pull in progress may show its stored-but-not-yet-
 * registered blobs as reclaimable until it registers its image.
 *
 * A container's size is the bytes of the regular files among its changes
 * (hardlinks counted once), as docker's SizeRw: on overlay only the upper is
 * read; full-tree drivers (vfs, btrfs) compare trees, which reads the
 * container's files. Files are looked at through util/safe-dir.ts (dirfd,
 * no-follow): a container cannot point the count at host files.
 */
import type { ContentStore } from '../content/store.js';
import type { Digest } from '../digest.js';
import { hexOf } from '../digest.js';
import type { GraphDriver } from '../drivers/driver.js';
import { chainIds } from '../layer/chain.js';
import type { Change } from '../layer/changes.js';
import { SafeTree } from '../util/safe-dir.js';
import type { ContainerRecord, ContainerStore } from './containers.js';
import { diffLayer } from './differ.js';
import { collectGarbage, containerBlobs } from './gc.js';
import type { ImageRecord, ImageStore } from './image-store.js';
import type { LayerMetaRecord, LayerStore } from './layer-store.js';

/** The size of a container's own changes. */
export interface ContainerSize {
  /** The container. */
  name: string;
  /** Bytes of the regular files it added or changed (hardlinks once). */
  bytes: number;
  /** Entries added, changed or deleted. */
  changes: number;
  /** How the changes were found (native overlay upper, or tree comparison). */
  method: 'native' | 'naive';
}

/** What `Store.diskUsage` reports, in bytes. */
export interface DiskUsage {
  /** Registered images. */
  images: {
    count: number;
    /** Images a container was made from. */
    active: number;
    /** Layer blobs of all images, each blob once. */
    compressedBytes: number;
    /** Unpacked layers of all images, each layer once (layers not unpacked count 0). */
    unpackedBytes: number;
    /** Freed on top of {@link DiskUsage.reclaimableBytes} by removing every image no container uses, then gc. */
    reclaimableBytes: number;
  };
  /** Unpacked image layers. */
  layers: {
    /** Image layers in the driver (container layers are under `containers`). */
    count: number;
    bytes: number;
    /** Layers no image or container needs: gc frees them now. */
    reclaimableBytes: number;
  };
  /** Container layers. */
  containers: {
    count: number;
    /** Containers mounted now. */
    mounted: number;
    /** Their changes (undefined when sizes were not asked for). */
    bytes: number | undefined;
    /** Changes of the unmounted ones: freed by removing them (undefined when sizes were not asked for). */
    reclaimableBytes: number | undefined;
  };
  /** The content store: blobs and ingests. */
  content: {
    blobs: number;
    bytes: number;
    /** Partial downloads and temp ingests. */
    ingests: number;
    ingestBytes: number;
    /** Blobs nothing references and ingests gc would drop: gc frees them now. */
    reclaimableBytes: number;
  };
  /** What `gc` would free now: `layers.reclaimableBytes + content.reclaimableBytes`. */
  reclaimableBytes: number;
}

/** Progress of Store.diskUsage: one event per step, and per container sized. */
export interface DiskUsageProgress {
  /** Reading records, walking the content store, gc's dry run, sizing containers. */
  step: 'records' | 'content' | 'gc' | 'containers';
  /** Units of the step done so far (containers sized). */
  done: number;
  /** Units of the step in all. */
  total: number;
}

/** Options of Store.diskUsage. */
export interface DiskUsageOptions {
  /** Measure each container's changes (default true; on vfs/btrfs this reads their files). */
  containerSizes?: boolean | undefined;
  /** Stops it between steps and containers (TSG_ABORTED). */
  signal?: AbortSignal | undefined;
  /** One event per step, and per container sized. */
  onProgress?: ((progress: DiskUsageProgress) => void) | undefined;
}

/** Bytes of the regular files among `changes` below `root` (hardlinks once). */
export function changedBytes(changes: Change[], root: string): number {
  const tree = new SafeTree(root);
  const seen = new Set<string>();
  let bytes = 0;
  try {
    for (const c of changes) {
      if (c.kind === 'D') continue;
      const node = tree.open(c.path.replace(/^\/+/, ''));
      if (!node) continue; // gone since it was listed
      try {
        const st = node.stats;
        if (!st.isFile()) continue;
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        bytes += st.size;
      } finally {
        node.close();
      }
    }
  } finally {
    tree.close();
  }
  return bytes;
}

/** The size of `record`'s changes (the caller holds the container). */
export async function containerSize(driver: GraphDriver, record: ContainerRecord): Promise<ContainerSize> {
  const diff = await diffLayer(driver, record.id, record.parent ? hexOf(record.parent) : undefined);
  try {
    return { name: record.name, bytes: changedBytes(diff.changes, diff.tarSource.root), changes: diff.changes.length, method: diff.method };
  } finally {
    await diff.release();
  }
}

/** Blobs and layers `images` and `containers` keep (gc's mark). */
function mark(content: ContentStore, images: ImageRecord[], containers: ContainerRecord[], metas: Map<string, LayerMetaRecord>): { blobs: Set<string>; layers: Set<string> } {
  const blobs = new Set<string>();
  const layers = new Set<string>();
  for (const img of images) {
    for (const d of [img.digest, img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) blobs.add(d);
    for (const c of chainIds(img.layers.map((l) => l.diffId))) layers.add(c);
  }
  for (const ctr of containers) {
    for (const d of containerBlobs(content, ctr) ?? [ctr.imageDigest]) blobs.add(d);
    // Bounded by the number of layer records: a cycle cannot spin.
    for (let cur: Digest | undefined = ctr.parent, n = 0; cur && n <= metas.size; n++) {
      layers.add(cur);
      cur = metas.get(cur)?.parent;
    }
  }
  return { blobs, layers };
}

export interface UsageParts {
  content: ContentStore;
  images: ImageStore;
  layers: LayerStore;
  containers: ContainerStore;
  isMounted: (record: ContainerRecord) => boolean;
  /** Sizes one container while holding it; undefined when it cannot be held now (being made or removed). */
  sizeOf: (record: ContainerRecord) => Promise<ContainerSize | undefined>;
}

/** See DiskUsage. */
export async function diskUsage(parts: UsageParts, options: DiskUsageOptions = {}): Promise<DiskUsage> {
  const { content, layers } = parts;
  const signal = options.signal;
  const progress = options.onProgress;
  signal?.throwIfAborted();
  const images = parts.images.list();
  const containers = parts.containers.list();
  const metas = new Map(layers.list().map((m) => [m.chainId as string, m]));
  progress?.({ step: 'records', done: 1, total: 1 });

  const blobs = new Map<string, number>();
  for (const b of content.walk()) blobs.set(b.digest, b.size);
  const ingests = content.ingests();
  progress?.({ step: 'content', done: 1, total: 1 });

  // What gc would free now: its own dry run, so the two never disagree.
  signal?.throwIfAborted();
  const gc = await collectGarbage({ content, images: parts.images, layers, containers: parts.containers }, { dryRun: true });
  const gcLayerBytes = gc.layers.reduce((n, l) => n + l.size, 0);
  const gcContentBytes = gc.blobs.reduce((n, b) => n + b.size, 0) + gc.ingestBytes;
  progress?.({ step: 'gc', done: 1, total: 1 });

  // Images: all of them, and what removing the unused ones would free on top of gc.
  const used = (img: ImageRecord) => containers.some((c) => c.image === img.name || c.imageDigest === img.manifestDigest);
  const active = images.filter(used);
  const all = mark(content, images, containers, metas);
  const kept = mark(content, active, containers, metas);
  const imageBlobs = new Set(images.flatMap((i) => i.layers.map((l) => l.digest as string)));
  const imageLayers = new Set(images.flatMap((i) => chainIds(i.layers.map((l) => l.diffId)) as string[]));
  let compressed = 0;
  for (const d of imageBlobs) compressed += blobs.get(d) ?? 0;
  let unpacked = 0;
  for (const c of imageLayers) unpacked += metas.get(c)?.size ?? 0;
  let imageReclaim = 0;
  for (const d of all.blobs) if (!kept.blobs.has(d)) imageReclaim += blobs.get(d) ?? 0;
  for (const c of all.layers) if (!kept.layers.has(c)) imageReclaim += metas.get(c)?.size ?? 0;

  // Containers: mounted or not, and their changes.
  let mounted = 0;
  let ctrBytes: number | undefined;
  let ctrReclaim: number | undefined;
  const sizes = options.containerSizes !== false;
  if (sizes) {
    ctrBytes = 0;
    ctrReclaim = 0;
  }
  let done = 0;
  for (const c of containers) {
    const isMounted = parts.isMounted(c);
    if (isMounted) mounted++;
    if (sizes) {
      signal?.throwIfAborted();
      const size = (await parts.sizeOf(c))?.bytes ?? 0;
      ctrBytes! += size;
      if (!isMounted) ctrReclaim! += size;
      progress?.({ step: 'containers', done: ++done, total: containers.length });
    }
  }

  let blobBytes = 0;
  for (const size of blobs.values()) blobBytes += size;
  const layerMetas = [...metas.values()];
  return {
    images: { count: images.length, active: active.length, compressedBytes: compressed, unpackedBytes: unpacked, reclaimableBytes: imageReclaim },
    layers: { count: layerMetas.length, bytes: layerMetas.reduce((n, m) => n + (m.size ?? 0), 0), reclaimableBytes: gcLayerBytes },
    containers: { count: containers.length, mounted, bytes: ctrBytes, reclaimableBytes: ctrReclaim },
    content: {
      blobs: blobs.size,
      bytes: blobBytes,
      ingests: ingests.length,
      ingestBytes: ingests.reduce((n, i) => n + i.offset, 0),
      reclaimableBytes: gcContentBytes,
    },
    reclaimableBytes: gcLayerBytes + gcContentBytes,
  };
}
