/** `tsgraph push REF [DEST]`: upload an image to a registry (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { type RegistryFlags, parseJobs, registryStoreOptions } from '../registry-flags.js';
import { type CommandContext, requireStore } from '../context.js';
import { type GlobalOptions, formatBytes, printJson, writeOut } from '../output.js';
import { PullProgress, progressMode } from '../progress.js';

export interface PushFlags extends RegistryFlags {
  chunkSize: string;
  quiet?: boolean;
}

export async function push(ctx: CommandContext, ref: string, dest: string | undefined, flags: PushFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const progress = new PullProgress(progressMode({ quiet: flags.quiet, json: g.json }), 'push');
  const store = await requireStore(g, `image ${ref}`, {
    ...registryStoreOptions(flags),
    onRetry: (r) => progress.line(`retrying in ${(r.delayMs / 1000).toFixed(1)}s (${r.reason})`),
  });
  try {
    const r = await store.push(ref, dest, {
      jobs: parseJobs(flags),
      chunkSize: Number(flags.chunkSize),
      signal: ctx.signal,
      onProgress: (e) => {
        if (e.type === 'blob-mounted') progress.line(`${e.digest.slice(7, 19)}: mounted from ${e.from}`);
        else if (e.type === 'blob-exists') progress.handle({ ...e, kind: 'layer' });
        else if (e.type === 'blob-start') progress.handle({ ...e, kind: 'layer', offset: 0 });
        else if (e.type === 'blob-progress') progress.handle({ ...e, kind: 'layer' });
        else progress.handle({ ...e, kind: 'layer', fetched: e.size });
      },
    });
    progress.stop();
    if (g.json) printJson(r);
    else if (flags.quiet) writeOut(`${r.digest}\n`);
    else writeOut(`pushed ${r.ref} ${r.digest} (${r.uploaded} uploaded, ${formatBytes(r.bytesUploaded)}; ${r.existed} present; ${r.mounted} mounted)\n`);
  } finally {
    progress.stop();
    await store.close();
  }
}
