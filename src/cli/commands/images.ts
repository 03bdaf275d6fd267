/** `tsgraph images [REPO[:TAG]]`: list images in the store (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { NotFoundError, UsageError } from '../../errors.js';
import type { ImageRecord } from '../../store/image-store.js';
import { imageConfig, imageSize } from '../../store/history.js';
import type { Store } from '../../store/store.js';
import { openExistingStore } from '../context.js';
import { createdAt, createdSince, globMatcher, parseTemplate, renderRows, splitName } from '../format-template.js';
import { type GlobalOptions, formatBytes, formatTable, printJson, safeCell, writeOut } from '../output.js';

export interface ImagesFlags {
  quiet?: boolean;
  digests?: boolean;
  /** false with --no-trunc. */
  trunc?: boolean;
  filter?: string[];
  format?: string;
}

/** One image as `--format` sees it (docker's field names). */
export interface ImageRow {
  Repository: string;
  Tag: string;
  /** Image ID: the config digest (12 hex, or whole with --no-trunc). */
  ID: string;
  /** The digest the name resolved to (docker's RepoDigest). */
  Digest: string;
  CreatedSince: string;
  CreatedAt: string;
  /** Unpacked size (the blobs' size while not unpacked). */
  Size: string;
  Platform: string;
  Name: string;
}

export const IMAGE_FIELDS: readonly (keyof ImageRow)[] = ['Repository', 'Tag', 'ID', 'Digest', 'CreatedSince', 'CreatedAt', 'Size', 'Platform', 'Name'];
const LABELS: Record<string, string> = { ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT' };

/** docker's familiar form of a repository: docker.io/library/busybox → busybox, docker.io/org/x → org/x. */
function familiar(repository: string): string {
  if (!repository.startsWith('docker.io/')) return repository;
  const rest = repository.slice('docker.io/'.length);
  return rest.startsWith('library/') && !rest.slice(8).includes('/') ? rest.slice(8) : rest;
}

/**
 * docker's reference match: the pattern (path.Match rules) against the
 * familiar name and name:tag; tsgraph also tries the full forms
 * (docker.io/library/busybox[:latest]), which is what it prints, and the
 * last path component with and without the tag.
 */
export function referenceMatcher(pattern: string): (image: ImageRecord) => boolean {
  const match = globMatcher(pattern);
  return (image) => {
    const { repository } = splitName(image.name);
    const suffix = image.name.slice(repository.length); // ":tag" or "@sha256:…"
    const short = familiar(repository);
    // As podman: the last path component too (`busybox` lists localhost/busybox, as `mount busybox` finds it).
    const last = repository.slice(repository.lastIndexOf('/') + 1);
    return [short, short + suffix, repository, image.name, last, last + suffix].some(match);
  };
}

interface Created {
  created: string | undefined;
}

/** The config's `created`: from the record when it has it, else the config blob. */
function created(store: Store, image: ImageRecord): string | undefined {
  if (image.created) return image.created;
  try {
    return imageConfig(image, store.content).created;
  } catch {
    return undefined; // unreadable config: `check` reports it; the listing goes on
  }
}

/** The filters of `--filter key=value` (keys ANDed; several `reference=` match any, as docker). */
function parseFilters(store: Store | undefined, filters: string[], positional: string | undefined): (i: ImageRecord & Created) => boolean {
  const refs: Array<(i: ImageRecord) => boolean> = [];
  const tests: Array<(i: ImageRecord & Created) => boolean> = [];
  for (const f of filters) {
    const eq = f.indexOf('=');
    const key = eq < 0 ? f : f.slice(0, eq);
    const value = eq < 0 ? '' : f.slice(eq + 1);
    if (eq < 0 || !value) throw new UsageError('TSG_USAGE', `bad filter ${f} (want key=value: reference=, dangling=, before=, since=)`, { data: { filter: f } });
    if (key === 'reference') refs.push(referenceMatcher(value));
    else if (key === 'dangling') {
      const v = value.toLowerCase();
      if (!['true', 'false', '1', '0'].includes(v)) throw new UsageError('TSG_USAGE', `bad filter ${f} (dangling=true or dangling=false)`, { data: { filter: f } });
      const want = v === 'true' || v === '1';
      tests.push((i) => (splitName(i.name).tag === '<none>') === want);
    } else if (key === 'before' || key === 'since') {
      // No store: the image is not there, as for any verb that names one.
      if (!store) throw new NotFoundError('TSG_NOT_FOUND', `image ${value} is not in the store (there is no store)`, { data: { ref: value } });
      const ref = store.findImage(value);
      const t = Date.parse(created(store, ref) ?? '');
      if (Number.isNaN(t)) throw new UsageError('TSG_USAGE', `image ${ref.name} has no creation time to compare with (${key}=)`, { data: { filter: f } });
      tests.push((i) => {
        const c = Date.parse(i.created ?? '');
        return !Number.isNaN(c) && (key === 'before' ? c < t : c > t);
      });
    } else {
      throw new UsageError('TSG_USAGE', `unknown filter ${key} (reference, dangling, before, since)`, { data: { filter: f } });
    }
  }
  if (positional !== undefined) tests.push(referenceMatcher(positional));
  if (refs.length) tests.push((i) => refs.some((r) => r(i)));
  return (i) => tests.every((t) => t(i));
}

export async function images(repo: string | undefined, flags: ImagesFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  // A bad format is refused before anything is read (an empty store must not hide it).
  const template = flags.format && !g.json ? parseTemplate(flags.format).checkFields(IMAGE_FIELDS) : undefined;
  const store = await openExistingStore(g);
  const keep = parseFilters(store, flags.filter ?? [], repo);
  const list = store ? store.listImages().map((i) => ({ ...i, created: created(store, i) })).filter(keep) : [];
  const rows = list.map((i) => {
    const size = imageSize(i, store!.layers);
    const { repository, tag } = splitName(i.name);
    return { image: i, repository, tag, unpacked: size.unpackedBytes, compressed: size.compressedBytes };
  });
  if (g.json) {
    return printJson(
      rows.map((r) => ({ ...r.image, id: r.image.configDigest, repository: r.repository, tag: r.tag, unpackedSize: r.unpacked ?? null, compressedSize: r.compressed })),
    );
  }
  if (flags.quiet) return void writeOut(rows.map((r) => `${r.image.name}\n`).join(''));
  const id = (i: ImageRecord) => (flags.trunc === false ? i.configDigest : i.configDigest.slice(7, 19));
  const data: ImageRow[] = rows.map((r) => ({
    Repository: r.repository,
    Tag: r.tag,
    ID: id(r.image),
    Digest: r.image.digest,
    CreatedSince: createdSince(r.image.created),
    CreatedAt: createdAt(r.image.created),
    Size: formatBytes(r.unpacked ?? r.compressed),
    Platform: r.image.platform,
    Name: r.image.name,
  }));
  if (template) return void process.stdout.write(renderRows(template, data, LABELS, safeCell, formatTable));
  const header = ['REPOSITORY', 'TAG', ...(flags.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
  const cells = data.map((d) => [d.Repository, d.Tag, ...(flags.digests ? [d.Digest] : []), d.ID, d.CreatedSince, d.Size]);
  writeOut(formatTable(header, cells));
}
