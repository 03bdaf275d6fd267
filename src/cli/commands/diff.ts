/** `tsgraph diff NAME`: what a container changed, or the change as a layer tar (defined in ../program.ts). */
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Command } from '../commander.js';
import { formatChanges } from '../../layer/changes.js';
import { diffTar } from '../../store/differ.js';
import { displayPath } from '../../util/byte-path.js';
import { requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function diff(name: string, flags: { output?: string }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
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
}
