/** `tsgraph pull REF`: fetch an image into the store (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { type RegistryFlags, parseJobs, registryStoreOptions } from '../registry-flags.js';
import { type GlobalOptions, formatBytes, printJson, writeOut } from '../output.js';
import { PullProgress, progressMode } from '../progress.js';
import { type CommandContext, openStore } from '../context.js';

export interface PullFlags extends RegistryFlags {
  platform?: string;
  quiet?: boolean;
  unpack: boolean;
}

export async function pull(ctx: CommandContext, ref: string, flags: PullFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions & PullFlags>();
  const jobs = parseJobs(flags);
  const progress = new PullProgress(progressMode({ quiet: flags.quiet, json: g.json }));
  const store = await openStore(g, {
    ...registryStoreOptions(flags),
    onRetry: (r) => progress.line(`retrying in ${(r.delayMs / 1000).toFixed(1)}s (${r.reason})`),
  });
  try {
    const result = await store.pull(ref, { platform: flags.platform, jobs, signal: ctx.signal, onProgress: progress.handle, unpack: flags.unpack });
    progress.stop();
    const { image } = result;
    if (g.json) {
      printJson({
        name: image.name,
        digest: image.digest,
        manifestDigest: image.manifestDigest,
        configDigest: image.configDigest,
        platform: image.platform,
        driver: store.driver.name,
        layers: image.layers,
        bytesFetched: result.bytesFetched,
        bytesReused: result.bytesReused,
        blobsFetched: result.blobsFetched,
        blobsReused: result.blobsReused,
        layersUnpacked: result.layersUnpacked,
        layersReused: result.layersReused,
        seconds: Number(result.seconds.toFixed(3)),
        status: result.status,
      });
    } else if (flags.quiet) {
      writeOut(`${image.name}\n`);
    } else {
      const status =
        result.status === 'downloaded'
          ? `Downloaded newer image (${formatBytes(result.bytesFetched)} fetched, ${formatBytes(result.bytesReused)} reused)`
          : result.status === 'tagged'
            ? 'Tagged from content already in the store (nothing fetched)'
            : 'Image is up to date';
      writeOut(`Digest: ${image.digest}\nStatus: ${status} for ${image.name}\n${image.name}\n`);
    }
  } finally {
    progress.stop();
    await store.close();
  }
}
