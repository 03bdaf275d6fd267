/** `tsgraph containers` (`ps`): container layers and their mount state. */
import { Command } from '../commander.js';
import { type GlobalOptions, formatTable, printJson, writeOut } from '../output.js';

export function containersCommand(): Command {
  return new Command('containers')
    .alias('ps')
    .summary('list container layers and whether they are mounted')
    .description('List container layers: name, image, driver, mount state and root path.')
    .option('-q, --quiet', 'print only names')
    .action(async (flags: { quiet?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { openExistingStore } = await import('../context.js');
      const store = await openExistingStore(g);
      const list = store ? store.listContainers() : [];
      if (g.json) return printJson(list);
      if (flags.quiet) return void writeOut(list.map((c) => `${c.name}\n`).join(''));
      const rows = list.map((c) => [c.name, c.image, c.driver, c.mounted ? (c.readOnly ? 'ro' : 'rw') : 'no', c.mounted ? (c.path ?? '') : '']);
      writeOut(formatTable(['NAME', 'IMAGE', 'DRIVER', 'MOUNTED', 'PATH'], rows));
    });
}
