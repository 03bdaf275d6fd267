/** `tsgraph rm`, `rmi`, `gc`: removing containers, image names, and what nothing references. */
import { Command } from '../commander.js';
import { type GlobalOptions, formatBytes, printJson, writeOut, writeErr } from '../output.js';

export function rmCommand(): Command {
  return new Command('rm')
    .summary('unmount and delete container layers')
    .description('Unmount (every reference) and delete the container layers NAME…; their images stay.')
    .argument('<names...>', 'container names')
    .action(async (names: string[], _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { requireStore } = await import('../context.js');
      const store = await requireStore(g, `container ${names[0]}`);
      const removed: string[] = [];
      for (const n of names) removed.push((await store.removeContainer(n)).name);
      if (g.json) printJson({ removed });
      else writeOut(removed.map((n) => `${n}\n`).join(''));
    });
}

export function rmiCommand(): Command {
  return new Command('rmi')
    .summary('remove image names from the store')
    .description('Remove images REF…; refused while a container was made from one, unless --force. Run `tsgraph gc` to reclaim space.')
    .argument('<refs...>', 'image names, short names or digest prefixes')
    .option('-f, --force', 'remove even if containers use the image (they keep working)')
    .action(async (refs: string[], flags: { force?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { requireStore } = await import('../context.js');
      const store = await requireStore(g, `image ${refs[0]}`);
      const removed: string[] = [];
      for (const r of refs) removed.push((await store.removeImage(r, { force: flags.force })).name);
      if (g.json) printJson({ removed });
      else writeOut(removed.map((n) => `Untagged: ${n}\n`).join(''));
    });
}

export function gcCommand(): Command {
  return new Command('gc')
    .summary('remove layers and blobs no image or container references')
    .description(
      'Mark everything images and containers need, delete the rest, and print what was reclaimed. Partial downloads ' +
        'untouched for a day (and not being written) go too, and at once the temp ingests of killed commits.',
    )
    .option('-n, --dry-run', 'only report what would be removed')
    .action(async (flags: { dryRun?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { openExistingStore } = await import('../context.js');
      const store = await openExistingStore(g);
      // No store, nothing to collect (and no root made by a typo).
      const r = store ? await store.gc({ dryRun: flags.dryRun }) : { dryRun: !!flags.dryRun, ingests: [], ingestBytes: 0, layers: [], blobs: [], bytes: 0, errors: [] };
      if (g.json) return printJson(r);
      const verb = r.dryRun ? 'would remove' : 'removed';
      const ingests = r.ingests.length ? `, ${r.ingests.length} abandoned ingest(s) (${formatBytes(r.ingestBytes)})` : '';
      writeOut(`${verb} ${r.layers.length} layer(s) and ${r.blobs.length} blob(s)${ingests}, ${formatBytes(r.bytes)} reclaimed${r.dryRun ? ' (dry run)' : ''}\n`);
      for (const e of r.errors) writeErr(`tsgraph: gc: ${e}\n`);
    });
}
