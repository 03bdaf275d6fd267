/** `tsgraph images`: list images in the store (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { shortDigest } from '../../digest.js';
import { openExistingStore } from '../context.js';
import { type GlobalOptions, formatBytes, formatTable, printJson, writeOut } from '../output.js';

export async function images(flags: { quiet?: boolean; digests?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
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
}
