/** `tsgraph diff NAME`: what a container changed, or the change as a layer tar. */
import * as fs from 'node:fs';
import { Command } from '../commander.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export function diffCommand(): Command {
  return new Command('diff')
    .summary("list a container's changes (A/C/D), or write them as an OCI layer tar")
    .description(
      'Show files added (A), changed (C) and deleted (D) in container NAME against its image, like docker diff. ' +
        'On overlay only the container layer is read (native diff). With --output the change is written as an OCI ' +
        'layer tar (whiteouts as .wh. files, opaque dirs as .wh..wh..opq, xattrs as PAX).',
    )
    .argument('<name>', 'container name')
    .option('-o, --output <file|->', 'write the layer tar to FILE (or - for stdout)')
    .action(async (name: string, flags: { output?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const [{ requireStore }, { formatChanges }, { diffTar }, { displayPath }, { pipeline }] = await Promise.all([
        import('../context.js'),
        import('../../layer/changes.js'),
        import('../../store/differ.js'),
        import('../../util/byte-path.js'),
        import('node:stream/promises'),
      ]);
      const store = await requireStore(g, `container ${name}`);
      const diff = await store.diff(name);
      if (flags.output) {
        const out = flags.output === '-' ? process.stdout : fs.createWriteStream(flags.output);
        await pipeline(diffTar(diff), out);
        return;
      }
      await diff.release();
      if (g.json) printJson({ method: diff.method, reason: diff.reason, changes: diff.changes.map((c) => ({ kind: c.kind, path: displayPath(c.path) })) });
      else writeOut(formatChanges(diff.changes));
    });
}
