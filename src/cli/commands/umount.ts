/** `tsgraph umount NAME`: release a container's mount. */
import { Command } from '../commander.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export function umountCommand(): Command {
  return new Command('umount')
    .alias('unmount')
    .summary("release a container's mount (the layer stays; `tsgraph rm` deletes it)")
    .description('Drop one mount reference of container NAME; the filesystem is unmounted when none are left.')
    .argument('<name>', 'container name')
    .action(async (name: string, _flags: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { requireStore } = await import('../context.js');
      const store = await requireStore(g, `container ${name}`);
      try {
        await store.umount(name);
        const state = store.listContainers().find((c) => c.name === name);
        if (g.json) printJson({ name, mounted: state?.mounted ?? false });
        else writeOut(`${name}\n`);
      } finally {
        store.close();
      }
    });
}
