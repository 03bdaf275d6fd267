/** `tsgraph containers` (`ps`): container layers and their mount state (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { openExistingStore } from '../context.js';
import { type GlobalOptions, formatTable, printJson, writeOut } from '../output.js';

export async function containers(flags: { quiet?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await openExistingStore(g);
  const list = store ? store.listContainers() : [];
  if (g.json) return printJson(list);
  if (flags.quiet) return void writeOut(list.map((c) => `${c.name}\n`).join(''));
  const rows = list.map((c) => [c.name, c.image, c.driver, c.mounted ? (c.readOnly ? 'ro' : 'rw') : 'no', c.mounted ? (c.path ?? '') : '']);
  writeOut(formatTable(['NAME', 'IMAGE', 'DRIVER', 'MOUNTED', 'PATH'], rows));
}
