/** `tsgraph diff NAME`: what a container changed, or the change as a layer tar (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { formatChanges } from '../../layer/changes.js';
import { diffTar } from '../../store/differ.js';
import { displayPath } from '../../util/byte-path.js';
import { requireStore } from '../context.js';
import { copyInto, refuseTerminal, writeTo } from '../output-file.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function diff(name: string, flags: { output?: string }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (flags.output === '-') refuseTerminal('a layer tar');
  const store = await requireStore(g, `container ${name}`);
  if (flags.output) {
    // The file is opened (or refused) before the container is read.
    const result = await writeTo(flags.output, 'a layer tar', async (out) => {
      const diff = await store.diff(name);
      return { method: diff.method, changes: diff.changes.length, bytes: await copyInto(diffTar(diff), out) };
    });
    if (g.json && flags.output !== '-') printJson({ output: flags.output, ...result });
    return;
  }
  const diff = await store.diff(name);
  await diff.release();
  if (g.json) printJson({ method: diff.method, reason: diff.reason, changes: diff.changes.map((c) => ({ kind: c.kind, path: displayPath(c.path) })) });
  else writeOut(formatChanges(diff.changes));
}
