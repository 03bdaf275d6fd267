/**
 * `tsgraph check`: compares what the store's records say with what is on
 * disk and in the mount table, like fsck for a graph driver store.
 *
 *   images      → their blobs (manifest, config, layers), and with
 *                 --verify-blobs every blob re-hashed; their layer chains
 *   layers      → incomplete marks, records without a driver layer, driver
 *                 layers without a record (and not a container's), staging
 *                 and half-removed dirs of killed processes
 *   containers  → half-made / half-removed records, records whose layer is gone
 *   mounts      → counts without a mount, mounts without a count, mounts
 *                 under the root that belong to nothing (probe leftovers)
 *   content     → unreferenced blobs (reclaimable), dead temp ingests,
 *                 partial downloads
 *   locks       → lock files of things that no longer exist (clutter:
 *                 reclaimable, removed by --repair)
 *
 * Every finding has a severity: `damage` (something a registered image or
 * container needs is gone or wrong; repair restores it when the store still
 * has what it takes, e.g. re-unpacking a layer from its blob), `repairable`
 * (a crash leftover with one right fix), `reclaimable` (space `gc` frees; not
 * a fault). Runs under the exclusive gc lock, so no pull, mount or commit is
 * half-way while it looks. Repair never deletes what a registered image or a
 * container needs.
 */
import * as fs from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { ContentStore } from '../content/store.js';
import { type Digest, hexOf, isDigest } from '../digest.js';
import type { LayerDirs } from '../drivers/layer-dirs.js';
import { BusyError } from '../errors.js';
import { chainIds } from '../layer/chain.js';
import { readMountInfo, unmount } from '../mount/index.js';
import type { ContainerStore } from './containers.js';
import type { ImageStore } from './image-store.js';
import { LayerStore } from './layer-store.js';
import { containerBlobs } from './gc.js';
import { removeTree } from '../util/safe-remove.js';
import { native } from '../native.js';
import { newHasher, digestOfHasher, sha256Hex } from '../digest.js';
import type { Mounter } from './mounts.js';

export type Severity = 'damage' | 'repairable' | 'reclaimable';

export interface Finding {
  /** Stable kind, e.g. `blob-missing`, `layer-incomplete`, `mount-uncounted`. */
  kind: string;
  severity: Severity;
  /** What it is about: an image name, digest, layer id, container name, path. */
  subject: string;
  detail: string;
  bytes?: number;
  /** With --repair: whether this one was fixed. */
  repaired?: boolean;
}

/** What Store.check found (and repaired): findings by kind and severity, and the overall status. */
export interface CheckReport {
  findings: Finding[];
  /** `clean`: nothing but reclaimable space; `repaired`: every fault fixed; `damaged`: faults left. */
  status: 'clean' | 'repaired' | 'damaged';
  /** Bytes `gc` would free (unreferenced blobs, partial downloads). */
  reclaimableBytes: number;
  blobsVerified: number;
}

/** Options of Store.check. */
export interface CheckOptions {
  repair?: boolean;
  verifyBlobs?: boolean;
  signal?: AbortSignal | undefined;
}

export interface CheckParts {
  root: string;
  content: ContentStore;
  images: ImageStore;
  layers: LayerStore;
  containers: ContainerStore;
  mounter: Mounter;
  /** The driver's layer bookkeeping (every built-in driver has one). */
  dirs: LayerDirs | undefined;
}

async function attempt(f: Finding, repair: boolean, fix: () => unknown): Promise<void> {
  if (!repair) return;
  try {
    await fix();
    f.repaired = true;
  } catch (err) {
    f.repaired = false;
    f.detail += ` (repair failed: ${(err as Error).message})`;
  }
}

/**
 * Mount points strictly below `dir`, deepest first (mountinfo lists resolved
 * paths). The root itself and the driver's home may be mount points of the
 * user's choosing (a dedicated filesystem): never ours to judge.
 */
function mountsBelow(dir: string, except: string[]): string[] {
  const real = fs.realpathSync(dir);
  return readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(`${real}/`) && !except.some((e) => p === e || e.startsWith(`${p}/`)))
    .sort((a, b) => b.length - a.length);
}

/** Re-hashes a stored blob: what its bytes really are. */
async function hashBlob(content: ContentStore, digest: Digest): Promise<{ ok: boolean; digest: Digest; size: number }> {
  const hash = newHasher();
  let size = 0;
  for await (const chunk of content.reader(digest) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  const actual = digestOfHasher(hash);
  return { ok: actual === digest, digest: actual, size };
}

export async function checkStore(parts: CheckParts, options: CheckOptions = {}): Promise<CheckReport> {
  const findings: Finding[] = [];
  const blobs = { verified: 0 };
  try {
    await run(parts, options, findings, blobs);
  } catch (err) {
    // Exit 1 means "repaired": a check that cannot finish must never say that. Whatever stopped it
    // (an abort, something no record explains) is damage left, with what was found so far.
    if ((err as { code?: string }).code === 'TSG_ABORTED') throw err;
    findings.push({ kind: 'check-failed', severity: 'damage', subject: parts.root, detail: `the check could not finish: ${(err as Error).message}` });
  }
  const reclaimableBytes = findings.filter((f) => f.severity === 'reclaimable').reduce((n, f) => n + (f.bytes ?? 0), 0);
  const faults = findings.filter((f) => f.severity !== 'reclaimable');
  const status = faults.length === 0 ? 'clean' : faults.every((f) => f.repaired) ? 'repaired' : 'damaged';
  return { findings, status, reclaimableBytes, blobsVerified: blobs.verified };
}

async function run(parts: CheckParts, options: CheckOptions, findings: Finding[], counts: { verified: number }): Promise<void> {
  const { content, images, layers, containers, mounter, dirs } = parts;
  const repair = options.repair ?? false;

  // 0. Records that do not parse, do not have their shape, or are not filed under their own name:
  // every verb skips them (their fields would become paths); they are damage, removed by --repair.
  for (const [what, store] of [['image', images], ['layer', layers], ['container', containers]] as const) {
    for (const file of store.scan().invalid) {
      const f = add({ kind: 'record-invalid', severity: 'damage', subject: file, detail: `${what} record ${file} is unreadable or malformed; it is ignored` });
      await attempt(f, repair, () => store.removeInvalid(file));
    }
  }
  // Layers that were recorded when we started: an image whose chain had any is an unpacked image (not --no-unpack).
  const recorded = new Set<string>(layers.list().map((m) => m.chainId));
  function add(f: Finding): Finding {
    findings.push(f);
    return f;
  }

  // 1. Containers left half-made or half-removed by a crash (the owner is gone).
  for (const rec of containers.list()) {
    if (rec.state) {
      const f = add({ kind: `container-${rec.state}`, severity: 'repairable', subject: rec.name, detail: `container ${rec.name} was left ${rec.state} by a killed process` });
      await attempt(f, repair, async () => {
        await mounter.repair();
        if (containers.get(rec.name)) throw new BusyError('TSG_IN_USE', 'its owner is still alive or its mount is busy');
      });
    } else if (!layers.driver.exists(rec.id)) {
      // A ready record must have its writable layer; without it the name is blocked for nothing.
      const f = add({ kind: 'container-layer-missing', severity: 'damage', subject: rec.name, detail: `container ${rec.name} has no writable layer ${rec.id}; its changes are lost` });
      await attempt(f, repair, () => containers.remove(rec.name));
    }
  }
  const containerIds = new Set(containers.list().map((c) => c.id));

  // Mounts first (a layer dir cannot go while something is mounted in it): each layer's
  // count against the mount table, and tsgraph mount points that belong to nothing.
  if (dirs) await checkMounts(parts, dirs, repair, add);

  // 2. Layer records against the driver.
  for (const m of layers.list()) {
    const id = LayerStore.driverId(m.chainId);
    if (m.incomplete) {
      const f = add({ kind: 'layer-incomplete', severity: 'repairable', subject: m.chainId, detail: `layer ${id.slice(0, 12)} was left half-unpacked by a killed pull` });
      await attempt(f, repair, async () => {
        await layers.repair();
        if (layers.get(m.chainId)?.incomplete) throw new BusyError('TSG_IN_USE', 'it is being unpacked right now');
      });
    } else if (!layers.driver.exists(id)) {
      // Whether an image needs it is settled in step 4 (which re-unpacks); the record alone is stale.
      const f = add({ kind: 'layer-record-stale', severity: 'repairable', subject: m.chainId, detail: `layer ${id.slice(0, 12)} is recorded but not in the ${layers.driver.name} driver` });
      await attempt(f, repair, () => layers.forget(m.chainId));
    }
  }

  // 3. Driver layers nobody records: not an image layer, not a container's.
  const known = new Set(layers.list().map((m) => LayerStore.driverId(m.chainId)));
  if (dirs) {
    // Children first: a parent goes only once nothing stands on it.
    const depth = (id: string) => (dirs.exists(id) ? dirs.meta(id).depth : 0);
    for (const id of dirs.ids().sort((a, b) => depth(b) - depth(a))) {
      if (!dirs.exists(id)) {
        // Layers are staged and renamed into place with their meta: a dir without one is debris.
        const f = add({ kind: 'layer-junk', severity: 'repairable', subject: id, detail: `driver dir ${id.slice(0, 12)} has no layer metadata` });
        await attempt(f, repair, () => removeTree(dirs.dir(id)));
        continue;
      }
      if (known.has(id) || containerIds.has(id)) continue;
      const f = add({ kind: 'layer-orphan', severity: 'repairable', subject: id, detail: `driver layer ${id.slice(0, 12)} belongs to no image layer or container` });
      await attempt(f, repair, () => layers.driver.remove(id));
    }
  }

  // Half-built or half-removed layer dirs of killed processes.
  for (const name of dirs?.leftovers() ?? []) {
    const f = add({ kind: 'layer-leftover', severity: 'repairable', subject: name, detail: `${name} was left by a killed layer creation or removal` });
    await attempt(f, repair, async () => {
      await layers.driver.cleanup();
      if (dirs?.leftovers().includes(name)) throw new BusyError('TSG_IN_USE', 'the driver lock is busy; try again');
    });
  }

  // 4. Images: blobs present (and intact), layer chain complete.
  const needed = new Set<string>();
  for (const img of images.list()) {
    options.signal?.throwIfAborted();
    const blobs: Array<[string, Digest]> = [
      ['manifest', img.manifestDigest],
      ['config', img.configDigest],
      ...img.layers.map((l, i) => [`layer ${i + 1}`, l.digest] as [string, Digest]),
    ];
    if (img.digest !== img.manifestDigest) blobs.unshift(['index', img.digest]);
    let blobsOk = true;
    for (const [what, digest] of blobs) {
      needed.add(digest);
      if (!content.has(digest)) {
        blobsOk = false;
        add({ kind: 'blob-missing', severity: 'damage', subject: img.name, detail: `image ${img.name}: ${what} blob ${digest} is missing; pull the image again` });
      }
    }
    const chain = chainIds(img.layers.map((l) => l.diffId));
    const present = chain.map((c) => layers.isComplete(c));
    // An image pulled with --no-unpack has none of its layers recorded: that is a choice, not damage.
    const unpacked = chain.some((c, i) => present[i] || recorded.has(c));
    if (unpacked && !present.every(Boolean)) {
      const missing = chain.filter((_, i) => !present[i]);
      const f = add({
        kind: 'image-layers-missing',
        severity: 'damage',
        subject: img.name,
        detail: `image ${img.name}: ${missing.length} of its ${chain.length} layers are not unpacked`,
      });
      if (blobsOk) await attempt(f, repair, () => layers.unpack(img, content, { signal: options.signal }));
      else if (repair) f.repaired = false;
    }
  }
  for (const ctr of containers.list()) {
    needed.add(ctr.imageDigest);
    const blobs = containerBlobs(content, ctr);
    for (const d of blobs ?? []) needed.add(d);
    if (!blobs) {
      add({ kind: 'container-image-missing', severity: 'damage', subject: ctr.name, detail: `container ${ctr.name}: its image manifest ${ctr.imageDigest} is gone; it cannot be committed` });
    }
    if (ctr.parent && !layers.isComplete(ctr.parent)) {
      add({ kind: 'container-parent-missing', severity: 'damage', subject: ctr.name, detail: `container ${ctr.name}: its image layers are gone; it cannot be mounted` });
    }
  }

  // 5. Blobs: verified on request; unreferenced ones are gc's (reclaimable, not a fault).
  for (const b of [...content.walk()]) {
    if (!fs.lstatSync(content.blobPath(b.digest), { throwIfNoEntry: false })?.isFile()) {
      const f = add({ kind: 'blob-stray', severity: 'repairable', subject: b.digest, detail: `${b.digest} in the blob store is not a regular file` });
      await attempt(f, repair, () => removeTree(content.blobPath(b.digest)));
      continue;
    }
    if (options.verifyBlobs) {
      options.signal?.throwIfAborted();
      counts.verified++;
      const actual = await hashBlob(content, b.digest);
      if (!actual.ok) {
        const f = add({ kind: 'blob-corrupt', severity: 'damage', subject: b.digest, detail: `blob ${b.digest} hashes to ${actual.digest} (${actual.size} bytes); it is removed by --repair so a pull fetches it again`, bytes: b.size });
        // Removing it turns "wrong bytes" into "missing", which a pull repairs; the image stays damaged until then.
        await attempt(f, repair, () => content.delete(b.digest));
        if (repair) f.repaired = false;
        continue;
      }
    }
    if (!needed.has(b.digest)) add({ kind: 'blob-unreferenced', severity: 'reclaimable', subject: b.digest, detail: `blob ${b.digest} is used by nothing (gc frees it)`, bytes: b.size });
  }
  for (const name of fs.readdirSync(content.blobsDir)) {
    if (!isDigest(`sha256:${name}`)) {
      const f = add({ kind: 'blob-stray', severity: 'repairable', subject: name, detail: `stray file ${name} among the blobs` });
      await attempt(f, repair, () => removeTree(join(content.blobsDir, name)));
    }
  }

  // 6. Ingests: dead temp ones can never resume; partial downloads are reclaimable.
  const ingestKeys = new Set<string>();
  for (const ing of content.ingests()) {
    ingestKeys.add(ing.key);
    if (content.ingestHeld(ing.key)) continue;
    if (ing.temporary) {
      const f = add({ kind: 'ingest-dead', severity: 'repairable', subject: ing.ref, detail: `temporary ingest ${ing.key} of a killed commit or push (${ing.offset} bytes)`, bytes: ing.offset });
      await attempt(f, repair, async () => {
        if (!(await content.removeIngest(ing.key))) throw new BusyError('TSG_IN_USE', 'a live process took it');
      });
    } else {
      add({ kind: 'ingest-partial', severity: 'reclaimable', subject: ing.ref, detail: `partial download of ${ing.ref} (${ing.offset} bytes; the next pull resumes it, gc frees it after a day)`, bytes: ing.offset });
    }
  }


  // 8. Lock files of things that are gone (they pile up: one per container, ingest, layer, image).
  const lockDir = join(parts.root, 'locks');
  const layerHex = new Set(layers.list().map((m) => hexOf(m.chainId)));
  const imageLockNames = new Set(images.list().map((i) => sha256Hex(i.name)));
  for (const file of fs.existsSync(lockDir) ? fs.readdirSync(lockDir) : []) {
    const stale = staleLock(file, { containerIds, ingestKeys, layerHex, imageNames: imageLockNames });
    if (!stale) continue;
    const path = join(lockDir, file);
    // Clutter, not a fault: a lock file cannot be unlinked safely by its last user (a waiter may hold the old inode), so every run leaves some.
    const f = add({ kind: 'lock-stale', severity: 'reclaimable', subject: file, detail: `lock file ${file} ${stale}`, bytes: 0 });
    await attempt(f, repair, () => removeUnheldLock(path));
  }

}

/** Why lock file `file` is stale, or undefined when it still guards something (or is a fixed one). */
function staleLock(
  file: string,
  /** imageNames: sha256 hex of each image name, as the lock files are named. */
  live: { containerIds: Set<string>; ingestKeys: Set<string>; layerHex: Set<string>; imageNames: Set<string> },
): string | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^container-(.+)\.lock$/.exec(file))) return live.containerIds.has(m[1]!) ? undefined : 'guards a container that no longer exists';
  if ((m = /^ingest-(.+)\.lock$/.exec(file))) return live.ingestKeys.has(m[1]!) ? undefined : 'guards a download that no longer exists';
  if ((m = /^layer-([0-9a-f]{64})\.lock$/.exec(file))) return live.layerHex.has(m[1]!) ? undefined : 'guards a layer that no longer exists';
  if ((m = /^image-([0-9a-f]{64})\.lock$/.exec(file))) return live.imageNames.has(m[1]!) ? undefined : 'guards an image name that no longer exists';
  return undefined;
}

/** Deletes a lock file nobody holds: taken exclusively first, so a live holder keeps it. */
function removeUnheldLock(path: string): void {
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
  try {
    const n = native();
    if (!n.flock(fd, n.lockConstants.LOCK_EX | n.lockConstants.LOCK_NB)) throw new BusyError('TSG_LOCKED', 'a live process holds it');
    // Unlinked while we hold it: a process that opened it before sees a dead file, one that opens it after makes a new one.
    fs.rmSync(path, { force: true });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Where a mount point sits among tsgraph's own: a layer's mount target
 * (`<home>/layers/<id>/merged`, aufs `<home>/mnt/<id>`), a probe's scratch
 * dir (`.probe-*`), or none. Only those are ever judged: a filesystem the
 * user mounted under the root (a disk for content/, a volume bind-mounted
 * into a container) is not tsgraph's to unmount.
 */
function ownMount(point: string, root: string, home: string, layersDir: string): { id?: string } | undefined {
  const inLayers = relative(layersDir, point).split(sep);
  if (!inLayers[0]!.startsWith('..') && inLayers.length === 2 && inLayers[1] === 'merged') return { id: inLayers[0] };
  const inHome = relative(home, point).split(sep);
  if (!inHome[0]!.startsWith('..') && inHome.length === 2 && inHome[0] === 'mnt') return { id: inHome[1] };
  const inRoot = relative(root, point).split(sep);
  if (!inRoot[0]!.startsWith('..') && inRoot.some((p) => /^\.probe-[0-9a-f]{8}$/.test(p))) return {};
  return undefined;
}

async function checkMounts(parts: CheckParts, dirs: LayerDirs, repair: boolean, add: (f: Finding) => Finding): Promise<void> {
  const root = fs.realpathSync(parts.root);
  const home = fs.realpathSync(dirs.home);
  const layersDir = fs.realpathSync(dirs.layersDir);
  const mounted = new Map<string, string[]>(); // layer id → its mount target, once per mount stacked there
  const stray: string[] = [];
  const ids = new Set(dirs.ids().filter((id) => dirs.exists(id)));
  for (const point of mountsBelow(root, [home, layersDir])) {
    const own = ownMount(point, root, home, layersDir);
    if (!own) continue;
    if (own.id !== undefined && ids.has(own.id)) mounted.set(own.id, [...(mounted.get(own.id) ?? []), point]);
    else if (!stray.includes(point)) stray.push(point);
  }
  for (const id of ids) {
    let meta;
    try {
      meta = dirs.meta(id);
    } catch {
      continue; // a layer being removed right now
    }
    const points = mounted.get(id) ?? [];
    const target = points[0];
    if (meta.mounts > 0 && !target) {
      const f = add({ kind: 'mount-count-stale', severity: 'repairable', subject: id, detail: `layer ${id.slice(0, 12)} counts ${meta.mounts} mount(s) but is not mounted` });
      await attempt(f, repair, () => dirs.locked(() => dirs.writeMeta({ ...dirs.meta(id), mounts: 0 })));
    } else if (meta.mounts === 0 && target) {
      const f = add({ kind: 'mount-uncounted', severity: 'repairable', subject: id, detail: `layer ${id.slice(0, 12)} is mounted at ${target} but nothing counts it (a killed mount)` });
      await attempt(f, repair, () => dirs.locked(() => detach(target)));
    } else if (target && points.length > 1) {
      // Two mounts on one target: a second mount on top of an uncounted one. One unmount would leave one behind.
      const f = add({ kind: 'mount-stacked', severity: 'repairable', subject: id, detail: `layer ${id.slice(0, 12)} has ${points.length} mounts stacked on ${target}` });
      await attempt(f, repair, () => dirs.locked(() => unmount(target, { detach: true })));
    }
  }
  for (const point of stray) {
    const f = add({ kind: 'mount-stray', severity: 'repairable', subject: point, detail: `${point} is a tsgraph mount point but belongs to no layer (a killed probe or removal)` });
    await attempt(f, repair, () => detach(point));
  }
}

function detach(point: string): void {
  // Bounded: a handful of stacked mounts at most.
  for (let i = 0; i < 16; i++) {
    try {
      unmount(point, { detach: true });
    } catch {
      return;
    }
    if (!readMountInfo().some((m) => m.mountPoint === point)) return;
  }
}
