/**
 * `tsgraph containers` (`ps`): container layers and their mount state (defined in ../program.ts).
 *
 * Plain `ps` lists every container, mounted or not: a tsgraph container is a
 * layer, not a process, and an unmounted one still holds its changes and
 * its disk space. `-a` (docker's "all") is accepted and lists the same.
 */
import type { Command } from '../commander.js';
import { imageSize } from '../../store/history.js';
import { openExistingStore } from '../context.js';
import { createdAt, createdSince, parseTemplate, renderRows } from '../format-template.js';
import { type GlobalOptions, formatBytes, formatTable, printJson, safeCell, writeOut } from '../output.js';

export interface ContainersFlags {
  quiet?: boolean;
  all?: boolean;
  size?: boolean;
  format?: string;
}

export const CONTAINER_FIELDS = ['Names', 'ID', 'Image', 'Driver', 'Mounted', 'Path', 'CreatedAt', 'RunningFor', 'Size'] as const;
const LABELS: Record<string, string> = { Names: 'NAME', ID: 'CONTAINER ID', RunningFor: 'CREATED', CreatedAt: 'CREATED AT', Mounted: 'MOUNTED' };

export async function containers(flags: ContainersFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const template = flags.format && !g.json ? parseTemplate(flags.format).checkFields(CONTAINER_FIELDS) : undefined;
  const store = await openExistingStore(g);
  // By name: the record directory's order is the file system's.
  const list = store ? store.listContainers().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : [];
  // Sizes read each container's changes (on vfs/btrfs a tree comparison): only when asked.
  const wantSize = !!flags.size || !!template?.fields().includes('Size');
  const sizes = new Map<string, { bytes: number; virtual: number | undefined } | undefined>();
  if (store && wantSize) {
    for (const c of list) {
      let bytes: number | undefined;
      try {
        bytes = (await store.containerSize(c.name)).bytes;
      } catch {
        bytes = undefined; // being made or removed right now
      }
      const image = store.images.get(c.image);
      const base = image && image.manifestDigest === c.imageDigest ? imageSize(image, store.layers).unpackedBytes : undefined;
      sizes.set(c.name, bytes === undefined ? undefined : { bytes, virtual: base === undefined ? undefined : base + bytes });
    }
  }
  if (g.json) {
    return printJson(wantSize ? list.map((c) => ({ ...c, size: sizes.get(c.name)?.bytes ?? null, virtualSize: sizes.get(c.name)?.virtual ?? null })) : list);
  }
  if (flags.quiet) return void writeOut(list.map((c) => `${c.name}\n`).join(''));
  const sizeText = (name: string) => {
    const s = sizes.get(name);
    return s ? `${formatBytes(s.bytes)}${s.virtual === undefined ? '' : ` (virtual ${formatBytes(s.virtual)})`}` : '-';
  };
  const mounted = (c: (typeof list)[number]) => (c.mounted ? (c.readOnly ? 'ro' : 'rw') : 'no');
  if (template) {
    const data = list.map((c) => ({
      Names: c.name,
      ID: c.id,
      Image: c.image,
      Driver: c.driver,
      Mounted: mounted(c),
      Path: c.mounted ? (c.path ?? '') : '',
      CreatedAt: createdAt(c.createdAt),
      RunningFor: createdSince(c.createdAt),
      Size: wantSize ? sizeText(c.name) : '',
    }));
    return void process.stdout.write(renderRows(template, data, LABELS, safeCell, formatTable));
  }
  const rows = list.map((c) => [c.name, c.image, c.driver, mounted(c), c.mounted ? (c.path ?? '') : '', ...(flags.size ? [sizeText(c.name)] : [])]);
  writeOut(formatTable(['NAME', 'IMAGE', 'DRIVER', 'MOUNTED', 'PATH', ...(flags.size ? ['SIZE'] : [])], rows));
}
