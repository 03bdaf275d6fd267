/** `tsgraph pull REF`: fetch an image into the store. */
import { Command } from '../commander.js';
import { type RegistryFlags, addRegistryFlags, parseJobs, registryStoreOptions } from '../registry-flags.js';
import { type GlobalOptions, formatBytes, printJson, writeOut } from '../output.js';
import type { CommandContext } from '../context.js';

interface PullFlags extends RegistryFlags {
  platform?: string;
  quiet?: boolean;
  unpack: boolean;
}

export function pullCommand(ctx: CommandContext): Command {
  const cmd = new Command('pull')
    .summary('pull an image from a registry or an OCI layout into the store')
    .description(
      'Pull an image into the content store. REF is a registry reference (busybox, ghcr.io/org/app:1.2, ' +
        'repo@sha256:...) or oci:DIR[:TAG] for an OCI image layout on disk. Blobs already stored are not ' +
        'fetched again; an interrupted pull resumes where it stopped.',
    )
    .argument('<ref>', 'image reference or oci:DIR[:TAG]')
    .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)');
  return addRegistryFlags(cmd, 'layers downloaded')
    .option('-q, --quiet', 'print only the image name when done')
    .option('--no-unpack', 'only download; unpack into the driver later (on first mount)')
    .action(async (ref: string, flags: PullFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions & PullFlags>();
      const jobs = parseJobs(flags);
      // Loaded here, not at the top: `tsgraph --help` and `pull --help` need none of it.
      const [{ openStore }, { PullProgress, progressMode }] = await Promise.all([import('../context.js'), import('../progress.js')]);
      const progress = new PullProgress(progressMode({ quiet: flags.quiet, json: g.json }));
      const store = await openStore(g, {
        ...(await registryStoreOptions(flags)),
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
          });
        } else if (flags.quiet) {
          writeOut(`${image.name}\n`);
        } else {
          const fresh = result.blobsFetched > 0;
          writeOut(
            `Digest: ${image.digest}\n` +
              `Status: ${fresh ? `Downloaded newer image (${formatBytes(result.bytesFetched)} fetched, ${formatBytes(result.bytesReused)} reused)` : 'Image is up to date'} for ${image.name}\n` +
              `${image.name}\n`,
          );
        }
      } finally {
        progress.stop();
        store.close();
      }
    });
}
