/** `tsgraph images`: list images in the store. */
import { Command } from '../commander.js';
import { type GlobalOptions, formatBytes, formatTable, printJson, writeOut } from '../output.js';

export function imagesCommand(): Command {
  return new Command('images')
    .summary('list images in the store')
    .description('List the images registered in the store, with their digest, platform and size.')
    .option('-q, --quiet', 'print only names')
    .option('--digests', 'show full digests')
    .action(async (flags: { quiet?: boolean; digests?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const [{ openExistingStore }, { shortDigest }] = await Promise.all([import('../context.js'), import('../../digest.js')]);
      const store = await openExistingStore(g);
      const images = store ? store.listImages() : [];
      if (g.json) return printJson(images);
      if (flags.quiet) return void writeOut(images.map((i) => `${i.name}\n`).join(''));
      const rows = images.map((i) => {
        const at = i.name.lastIndexOf('@');
        const colon = i.name.lastIndexOf(':');
        const split = at > 0 ? at : colon > i.name.lastIndexOf('/') ? colon : i.name.length;
        const repo = i.name.slice(0, split);
        const tag = at > 0 ? '<none>' : i.name.slice(split + 1) || '<none>';
        return [repo, tag, flags.digests ? i.digest : shortDigest(i.digest), i.platform, formatBytes(i.size), i.pulledAt.slice(0, 19).replace('T', ' ')];
      });
      writeOut(formatTable(['REPOSITORY', 'TAG', 'DIGEST', 'PLATFORM', 'SIZE', 'PULLED'], rows));
    });
}
