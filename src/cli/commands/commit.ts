/** `tsgraph commit NAME REF`: a container layer becomes an image (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { requireStore } from '../context.js';
import { type GlobalOptions, formatBytes, printJson, writeOut, writeErr } from '../output.js';

export interface CommitFlags {
  compress: 'gzip' | 'zstd' | 'none';
  change: string[];
  message?: string;
  author?: string;
}

export async function commit(name: string, ref: string, flags: CommitFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `container ${name}`);
  const r = await store.commit(name, ref, { compress: flags.compress, changes: flags.change, message: flags.message, author: flags.author });
  if (g.json) {
    printJson({ name: r.image.name, digest: r.image.manifestDigest, configDigest: r.image.configDigest, layer: r.layer, diffMethod: r.diffMethod });
  } else {
    writeErr(`layer ${r.layer.digest} (${formatBytes(r.layer.size)}, ${r.diffMethod} diff)\n`);
    writeOut(`${r.image.manifestDigest}\n`);
  }
}
