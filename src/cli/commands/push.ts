/** `tsgraph push REF [DEST]`: upload an image to a registry. */
import { Command } from '../commander.js';
import { type RegistryFlags, addRegistryFlags, parseJobs, registryStoreOptions } from '../registry-flags.js';
import type { CommandContext } from '../context.js';
import { type GlobalOptions, formatBytes, printJson, writeOut } from '../output.js';

export function pushCommand(ctx: CommandContext): Command {
  const cmd = new Command('push')
    .summary('push an image to a registry')
    .description(
      'Upload image REF to DEST (default: its own name). Blobs the registry has are skipped (HEAD), blobs another ' +
        'repository of the same registry holds are cross-mounted, large blobs go in chunks; the manifest goes last.',
    )
    .argument('<ref>', 'image in the store')
    .argument('[dest]', 'destination reference (registry/repo:tag)');
  return addRegistryFlags(cmd, 'blobs uploaded')
    .option('--chunk-size <bytes>', 'PATCH chunk size for large blobs', String(16 << 20))
    .option('-q, --quiet', 'print only the digest')
    .action(async (ref: string, dest: string | undefined, flags: RegistryFlags & { chunkSize: string; quiet?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const [{ requireStore }, { PullProgress, progressMode }] = await Promise.all([import('../context.js'), import('../progress.js')]);
      const progress = new PullProgress(progressMode({ quiet: flags.quiet, json: g.json }));
      const store = await requireStore(g, `image ${ref}`, {
        ...(await registryStoreOptions(flags)),
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
        store.close();
      }
    });
}
