/** `tsgraph inspect IMAGE|CONTAINER` and `tsgraph tag SRC DEST` (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { imageConfigSchema, manifestSchema, parseJson } from '../../oci/schemas.js';
import { requireStore } from '../context.js';
import { UsageError } from '../../errors.js';
import { imageSize } from '../../store/history.js';
import { parseTemplate, splitName } from '../format-template.js';
import { type GlobalOptions, printJson, safeCell, writeOut } from '../output.js';

/**
 * `-f FORMAT`: a Go template (format-template.ts) over the JSON shown plus
 * docker's names, so what docker users type works: `.Id`, `.RepoTags`,
 * `.RepoDigests`, `.Created`, `.Size`, `.Architecture`, `.Os`, `.Author`,
 * `.Config` (the run config: Env, Cmd, Labels…), `.RootFS`; for a container
 * `.Name`, `.Id`, `.Image`, `.Driver`, `.Mounted`, `.Path`, `.Created`.
 * A format without `{{` is one top-level field (`-f manifestDigest`), as before.
 */
export async function inspect(target: string, flags: { format?: string }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  // A malformed template is refused before the store is read.
  const template = flags.format?.includes('{{') ? parseTemplate(flags.format) : undefined;
  const store = await requireStore(g, target);
  let out: Record<string, unknown>;
  let docker: Record<string, unknown>;
  const container = store.listContainers().find((c) => c.name === target);
  if (container) {
    out = { kind: 'container', ...container };
    docker = { Name: container.name, Id: container.id, Image: container.image, Driver: container.driver, Mounted: container.mounted, Path: container.path ?? null, Created: container.createdAt };
  } else {
    const image = store.findImage(target);
    const manifest = parseJson(manifestSchema, store.content.readBlob(image.manifestDigest), 'manifest');
    const config = parseJson(imageConfigSchema, store.content.readBlob(image.configDigest), 'config');
    out = { kind: 'image', ...image, manifest, config };
    const names = store.listImages().filter((i) => i.configDigest === image.configDigest);
    const size = imageSize(image, store.layers);
    docker = {
      Id: image.configDigest,
      RepoTags: names.filter((n) => splitName(n.name).tag !== '<none>').map((n) => n.name),
      RepoDigests: [...new Set(names.map((n) => `${splitName(n.name).repository}@${n.digest}`))],
      Created: config.created ?? null,
      Author: config.author ?? '',
      Architecture: config.architecture,
      Os: config.os,
      ...(config.variant ? { Variant: config.variant } : {}),
      Size: size.unpackedBytes ?? size.compressedBytes,
      Config: config.config ?? {},
      RootFS: { Type: config.rootfs.type, Layers: config.rootfs.diff_ids },
    };
  }
  if (template) {
    if (g.json) printJson(template.render({ ...out, ...docker }));
    // Values escaped one by one (safeCell): the format's own tabs and newlines stay.
    else process.stdout.write(`${template.render({ ...out, ...docker }, safeCell)}\n`);
    return;
  }
  if (flags.format !== undefined && !Object.hasOwn(out, flags.format) && !Object.hasOwn(docker, flags.format)) {
    throw new UsageError('TSG_USAGE', `format: unknown field ${flags.format} (fields: ${[...Object.keys(out), ...Object.keys(docker)].join(' ')})`, { data: { format: flags.format } });
  }
  const value = flags.format !== undefined ? (Object.hasOwn(out, flags.format) ? out[flags.format] : docker[flags.format]) : out;
  if (typeof value === 'string' && !g.json) writeOut(`${value}\n`);
  else printJson(value ?? null);
}

export async function tag(source: string, target: string, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `image ${source}`);
  const image = store.findImage(source);
  const tagged = await store.tag(source, target);
  if (g.json) printJson({ source: image.name, target: tagged.name, digest: tagged.manifestDigest });
  else writeOut(`${tagged.name}\n`);
}
