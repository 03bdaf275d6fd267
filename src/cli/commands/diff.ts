/** `tsgraph diff NAME`: what a container changed, or the change as a layer tar (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { formatChanges } from '../../layer/changes.js';
import { diffTar } from '../../store/differ.js';
import { displayPath } from '../../util/byte-path.js';
import { requireStore } from '../context.js';
import { openOutput } from '../output-file.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function diff(name: string, flags: { output?: string }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  // A bad -o path (or a terminal) fails before the container is read.
  const write = flags.output ? openOutput(flags.output, `the diff of ${name}`) : undefined;
  const store = await requireStore(g, `container ${name}`);
  const diff = await store.diff(name);
  if (write) {
    const written = await write(diffTar(diff));
    if (g.json && written.path !== '-') printJson({ output: written.path, bytes: written.bytes, method: diff.method, changes: diff.changes.length });
    return;
  }
  await diff.release();
  if (g.json) printJson({ method: diff.method, reason: diff.reason, changes: diff.changes.map((c) => ({ kind: c.kind, path: displayPath(c.path) })) });
  else writeOut(formatChanges(diff.changes));
}
