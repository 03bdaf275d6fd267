/**
 * Garbage collection: mark everything an image or a container needs, sweep
 * the rest.
 *   images      → their index/manifest/config/layer blobs, their layer chains
 *   containers  → their base manifest, its config and layer blobs (commit
 *                 needs them even after `rmi --force`), their parent chain
 * Layers go children first. Runs under the exclusive `gc` lock; pulls,
 * mounts and commits hold it shared, so gc never sees their half-registered
 * content.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ContentStore } from '../content/store.js';
import { type Digest, isDigest } from '../digest.js';
import { chainIds } from '../layer/chain.js';
import { manifestSchema, parseJson } from '../oci/schemas.js';
import type { ContainerRecord, ContainerStore } from './containers.js';
import type { ImageStore } from './image-store.js';
import { LayerStore, type LayerMetaRecord } from './layer-store.js';
import { crashPoint } from '../util/crash-point.js';

/** What Store.gc removed (or would, with dryRun). */
export interface GcReport {
  dryRun: boolean;
  /**
   * Ingests removed: partial downloads nobody touched for `ingestMaxAgeMs`
   * (and nobody holds), and at any age the temp ingests of killed commits
   * (`temporary`: they can never be resumed).
   */
  ingests: Array<{ ref: string; size: number; temporary: boolean }>;
  /** Bytes of those ingests (included in `bytes`). */
  ingestBytes: number;
  layers: Array<{ chainId: Digest; size: number }>;
  blobs: Array<{ digest: Digest; size: number }>;
  /** Blob bytes + unpacked layer bytes reclaimed (or that would be). */
  bytes: number;
  /** Layers that could not be removed (still in use by something unknown to tsgraph). */
  errors: string[];
}

/**
 * The blobs a container needs even after `rmi --force` of its image (commit
 * reads them): its base manifest, that manifest's config and layers.
 * Undefined when the manifest is unreadable.
 */
export function containerBlobs(content: ContentStore, ctr: ContainerRecord): Digest[] | undefined {
  try {
    const m = parseJson(manifestSchema, content.readBlob(ctr.imageDigest), 'manifest');
    return [ctr.imageDigest, m.config.digest, ...m.layers.map((l) => l.digest)];
  } catch {
    return undefined;
  }
}

export async function collectGarbage(
  parts: { content: ContentStore; images: ImageStore; layers: LayerStore; containers: ContainerStore },
  options: { dryRun?: boolean; ingestMaxAgeMs?: number; signal?: AbortSignal | undefined } = {},
): Promise<GcReport> {
  const { content, images, layers, containers } = parts;
  const keepBlobs = new Set<string>();
  const keepLayers = new Set<string>();
  const metas = new Map(layers.list().map((m) => [m.chainId as string, m]));
  const keepChainFrom = (top: Digest | undefined) => {
    // Bounded by the number of layer records: a cycle cannot spin forever.
    for (let cur = top, n = 0; cur && n <= metas.size; n++) {
      keepLayers.add(cur);
      cur = metas.get(cur)?.parent;
    }
  };

  for (const img of images.list()) {
    for (const d of [img.digest, img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) keepBlobs.add(d);
    for (const c of chainIds(img.layers.map((l) => l.diffId))) keepLayers.add(c);
  }
  for (const ctr of containers.list()) {
    // A manifest gone already leaves nothing more to keep for it.
    for (const d of containerBlobs(content, ctr) ?? [ctr.imageDigest]) keepBlobs.add(d);
    keepChainFrom(ctr.parent);
  }

  const dryRun = options.dryRun ?? false;
  const report: GcReport = { dryRun, ingests: [], ingestBytes: 0, layers: [], blobs: [], bytes: 0, errors: [] };
  const depth = (m: LayerMetaRecord) => {
    let d = 0;
    for (let cur: Digest | undefined = m.parent; cur && d <= metas.size; d++) cur = metas.get(cur)?.parent;
    return d;
  };
  const doomed = [...metas.values()].filter((m) => !keepLayers.has(m.chainId)).sort((a, b) => depth(b) - depth(a));
  for (const m of doomed) {
    // Removing a layer is sync work behind an await (microtasks only): yield to
    // the event loop between layers so SIGINT/SIGTERM handlers and their watchdog run.
    await yieldToLoop();
    options.signal?.throwIfAborted(); // between layers: what is gone stays gone, the rest waits for the next gc
    if (!dryRun) {
      try {
        const id = LayerStore.driverId(m.chainId);
        if (layers.driver.exists(id)) await layers.driver.remove(id);
        crashPoint('gc:layer-removed'); // tests: the driver layer is gone, its record not yet
        layers.forget(m.chainId);
      } catch (err) {
        report.errors.push(`layer ${m.chainId}: ${(err as Error).message}`);
        continue;
      }
    }
    report.layers.push({ chainId: m.chainId, size: m.size });
    report.bytes += m.size;
  }
  // Partial downloads are kept for resuming, but not forever; temp ingests
  // cannot be resumed, so they go as soon as their writer is dead (its flock is free).
  const maxAge = options.ingestMaxAgeMs ?? 24 * 3600_000;
  for (const ing of content.ingests()) {
    if (!ing.temporary && Date.now() - ing.touchedMs < maxAge) continue;
    if (dryRun ? content.ingestHeld(ing.key) : !(await content.removeIngest(ing.key))) continue; // a live pull or commit
    report.ingests.push({ ref: ing.ref, size: ing.offset, temporary: ing.temporary });
    report.ingestBytes += ing.offset;
    report.bytes += ing.offset;
  }
  let n = 0;
  for (const b of [...content.walk()]) {
    if (++n % 256 === 0) {
      await yieldToLoop();
      options.signal?.throwIfAborted();
    }
    if (keepBlobs.has(b.digest) || !isDigest(b.digest)) continue;
    if (!dryRun) content.delete(b.digest);
    report.blobs.push(b);
    report.bytes += b.size;
  }
  return report;
}
