/** `tsgraph system df`: what the store takes on disk and what is reclaimable, like docker system df (defined in ../program.ts). */
import type { Command } from '../commander.js';
import type { DiskUsage } from '../../store/usage.js';
import { imageSize } from '../../store/history.js';
import { openExistingStore } from '../context.js';
import { createdSince, splitName } from '../format-template.js';
import { type GlobalOptions, formatBytes, formatTable, printJson, writeOut } from '../output.js';

const EMPTY: DiskUsage = {
  images: { count: 0, active: 0, compressedBytes: 0, unpackedBytes: 0, reclaimableBytes: 0 },
  layers: { count: 0, bytes: 0, reclaimableBytes: 0 },
  containers: { count: 0, mounted: 0, bytes: 0, reclaimableBytes: 0 },
  content: { blobs: 0, bytes: 0, ingests: 0, ingestBytes: 0, reclaimableBytes: 0 },
  reclaimableBytes: 0,
};

function reclaim(bytes: number | undefined, of: number | undefined): string {
  if (bytes === undefined) return '-';
  const pct = of ? Math.round((bytes / of) * 100) : 0;
  return `${formatBytes(bytes)} (${Math.min(pct, 100)}%)`;
}

export async function df(flags: { verbose?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await openExistingStore(g);
  const usage = store ? await store.diskUsage() : EMPTY;
  let verbose: { images: Array<Record<string, unknown>>; containers: Array<Record<string, unknown>> } | undefined;
  if (flags.verbose && store) {
    const images = store.listImages();
    const containers = store.listContainers();
    const sized = images.map((i) => ({ image: i, size: imageSize(i, store.layers) }));
    // A layer is shared when another image content (another config) stacks it too.
    const users = new Map<string, Set<string>>();
    for (const s of sized) for (const l of s.size.layers) (users.get(l.chainId) ?? users.set(l.chainId, new Set()).get(l.chainId)!).add(s.image.configDigest);
    verbose = {
      images: sized.map(({ image, size }) => {
        const shared = size.layers.filter((l) => users.get(l.chainId)!.size > 1).reduce((n, l) => n + (l.unpackedBytes ?? 0), 0);
        const total = size.unpackedBytes ?? size.layers.reduce((n, l) => n + (l.unpackedBytes ?? 0), 0);
        return {
          name: image.name,
          id: image.configDigest,
          created: image.created,
          unpackedBytes: size.unpackedBytes ?? null,
          compressedBytes: size.compressedBytes,
          sharedBytes: shared,
          uniqueBytes: total - shared,
          containers: containers.filter((c) => c.image === image.name || c.imageDigest === image.manifestDigest).length,
        };
      }),
      containers: [],
    };
    for (const c of containers) {
      let bytes: number | null = null;
      try {
        bytes = (await store.containerSize(c.name)).bytes;
      } catch {
        /* being made or removed right now */
      }
      verbose.containers.push({ name: c.name, image: c.image, mounted: c.mounted, createdAt: c.createdAt, bytes });
    }
  }
  if (g.json) return printJson(verbose ? { ...usage, verbose } : usage);
  const u = usage;
  const rows = [
    // Images: their layers unpacked and their blobs (what removing them and gc frees is counted in both).
    ['Images', String(u.images.count), String(u.images.active), formatBytes(u.images.unpackedBytes + u.images.compressedBytes), reclaim(u.images.reclaimableBytes, u.images.unpackedBytes + u.images.compressedBytes)],
    ['Containers', String(u.containers.count), String(u.containers.mounted), u.containers.bytes === undefined ? '-' : formatBytes(u.containers.bytes), reclaim(u.containers.reclaimableBytes, u.containers.bytes)],
    ['Layers', String(u.layers.count), '', formatBytes(u.layers.bytes), reclaim(u.layers.reclaimableBytes, u.layers.bytes)],
    ['Content', String(u.content.blobs), '', formatBytes(u.content.bytes + u.content.ingestBytes), reclaim(u.content.reclaimableBytes, u.content.bytes + u.content.ingestBytes)],
  ];
  let out = formatTable(['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], rows);
  out += `\n\`tsgraph gc\` would free ${formatBytes(u.reclaimableBytes)} now; removing the images no container uses (rmi) would free ${formatBytes(u.images.reclaimableBytes)} more.\n`;
  if (verbose) {
    out += '\nImages space usage:\n\n';
    out += formatTable(
      ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE', 'CONTAINERS'],
      verbose.images.map((i) => {
        const { repository, tag } = splitName(i.name as string);
        const size = (i.unpackedBytes as number | null) ?? (i.compressedBytes as number);
        return [repository, tag, (i.id as string).slice(7, 19), createdSince(i.created as string | undefined), formatBytes(size), formatBytes(i.sharedBytes as number), formatBytes(i.uniqueBytes as number), String(i.containers)];
      }),
    );
    out += '\nContainers space usage:\n\n';
    out += formatTable(
      ['NAME', 'IMAGE', 'SIZE', 'MOUNTED', 'CREATED'],
      verbose.containers.map((c) => [c.name as string, c.image as string, c.bytes === null ? '-' : formatBytes(c.bytes as number), c.mounted ? 'yes' : 'no', createdSince(c.createdAt as string)]),
    );
  }
  writeOut(out);
}
