/** `tsgraph commit NAME REF`: a container layer becomes an image. */
import { Command, Option } from '../commander.js';
import { type GlobalOptions, formatBytes, printJson, writeOut, writeErr } from '../output.js';

export function commitCommand(): Command {
  return new Command('commit')
    .summary('create an image from a container layer')
    .description(
      "Turn container NAME's changes into a new layer blob, append it to the image's config (diff_ids, history) " +
        'and write a new OCI manifest; register it as REF. --change applies Dockerfile instructions like docker commit.',
    )
    .argument('<name>', 'container name')
    .argument('<ref>', 'name for the new image (e.g. localhost/app:v2)')
    .addOption(new Option('--compress <kind>', 'layer compression').choices(['gzip', 'zstd', 'none']).default('gzip'))
    .addOption(
      new Option('-c, --change <instruction>', 'CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, EXPOSE or VOLUME (repeatable)')
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    )
    .option('-m, --message <text>', 'history comment')
    .option('-a, --author <name>', 'author')
    .action(async (name: string, ref: string, flags: { compress: 'gzip' | 'zstd' | 'none'; change: string[]; message?: string; author?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { requireStore } = await import('../context.js');
      const store = await requireStore(g, `container ${name}`);
      const r = await store.commit(name, ref, { compress: flags.compress, changes: flags.change, message: flags.message, author: flags.author });
      if (g.json) {
        printJson({ name: r.image.name, digest: r.image.manifestDigest, configDigest: r.image.configDigest, layer: r.layer, diffMethod: r.diffMethod });
      } else {
        writeErr(`layer ${r.layer.digest} (${formatBytes(r.layer.size)}, ${r.diffMethod} diff)\n`);
        writeOut(`${r.image.manifestDigest}\n`);
      }
    });
}
