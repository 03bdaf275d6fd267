/** `tsgraph inspect IMAGE|CONTAINER` and `tsgraph tag SRC DEST` (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { imageConfigSchema, manifestSchema, parseJson } from '../../oci/schemas.js';
import { requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function inspect(target: string, flags: { format?: string }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, target);
  let out: Record<string, unknown>;
  const container = store.listContainers().find((c) => c.name === target);
  if (container) {
    out = { kind: 'container', ...container };
  } else {
    const image = store.findImage(target);
    const manifest = parseJson(manifestSchema, store.content.readBlob(image.manifestDigest), 'manifest');
    const config = parseJson(imageConfigSchema, store.content.readBlob(image.configDigest), 'config');
    out = { kind: 'image', ...image, manifest, config };
  }
  const value = flags.format ? out[flags.format] : out;
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
