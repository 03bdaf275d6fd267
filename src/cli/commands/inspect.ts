/** `tsgraph inspect IMAGE|CONTAINER` and `tsgraph tag SRC DEST`. */
import { Command } from '../commander.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export function inspectCommand(): Command {
  return new Command('inspect')
    .summary('show an image (record, manifest, config) or a container as JSON')
    .description('Print what tsgraph knows about IMAGE (its record, manifest and config) or CONTAINER (its record and mount state) as JSON.')
    .argument('<target>', 'image name, short name, digest prefix, or container name')
    .option('-f, --format <field>', 'print one top-level field only (e.g. config, manifestDigest)')
    .action(async (target: string, flags: { format?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { requireStore } = await import('../context.js');
      const store = await requireStore(g, target);
      let out: Record<string, unknown>;
      const container = store.listContainers().find((c) => c.name === target);
      if (container) {
        out = { kind: 'container', ...container };
      } else {
        const image = store.findImage(target);
        const { imageConfigSchema, manifestSchema, parseJson } = await import('../../oci/schemas.js');
        const manifest = parseJson(manifestSchema, store.content.readBlob(image.manifestDigest), 'manifest');
        const config = parseJson(imageConfigSchema, store.content.readBlob(image.configDigest), 'config');
        out = { kind: 'image', ...image, manifest, config };
      }
      const value = flags.format ? out[flags.format] : out;
      if (typeof value === 'string' && !g.json) writeOut(`${value}\n`);
      else printJson(value ?? null);
    });
}

export function tagCommand(): Command {
  return new Command('tag')
    .summary('give an image another name')
    .description('Register TARGET as another name for the image SOURCE (same content, nothing copied), like docker tag.')
    .argument('<source>', 'image in the store')
    .argument('<target>', 'new name (registry/repo:tag)')
    .action(async (source: string, target: string, _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const [{ requireStore }, { formatReference, parseReference }] = await Promise.all([import('../context.js'), import('../../reference.js')]);
      const store = await requireStore(g, `image ${source}`);
      const image = store.findImage(source);
      const name = formatReference(parseReference(target));
      store.images.put({ ...image, name, pulledAt: new Date().toISOString() });
      if (g.json) printJson({ source: image.name, target: name, digest: image.manifestDigest });
      else writeOut(`${name}\n`);
    });
}
