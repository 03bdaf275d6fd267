/** `tsgraph bundle IMAGE DIR`: an OCI runtime bundle whose rootfs is a tsgraph mount. */
import { Command } from '../commander.js';
import { UsageError } from '../../errors.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export function bundleCommand(): Command {
  return new Command('bundle')
    .summary('make (or --remove) an OCI runtime bundle for runc')
    .description(
      'Mount IMAGE as a new container and write DIR/config.json (process from the image: Entrypoint + Cmd, Env, ' +
        'WorkingDir, User; namespaces and mounts like `runc spec`). `tsgraph bundle --remove DIR` unmounts and deletes it.',
    )
    .argument('[image]', 'image to run')
    .argument('[dir]', 'bundle directory')
    .option('--name <name>', 'container name')
    .option('-t, --tty', 'ask the runtime for a terminal')
    .option('--remove <dir>', 'unmount and delete the bundle in DIR')
    .action(async (image: string | undefined, dir: string | undefined, flags: { name?: string; tty?: boolean; remove?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (flags.remove && (image || dir)) throw new UsageError('TSG_USAGE', '--remove DIR takes no IMAGE');
      if (!flags.remove && (!image || !dir)) throw new UsageError('TSG_USAGE', 'bundle needs IMAGE and DIR (or --remove DIR)');
      const [{ requireStore }, { createBundle, removeBundle }, { mkdirBounded }] = await Promise.all([
        import('../context.js'),
        import('../../runtime/bundle.js'),
        import('../../util/private-root.js'),
      ]);
      const store = await requireStore(g, flags.remove ? `bundle ${flags.remove}` : `image ${image}`);
      if (flags.remove) {
        const container = await removeBundle(store, flags.remove);
        if (g.json) printJson({ removed: flags.remove, container });
        else writeOut(`${flags.remove}\n`);
        return;
      }
      // Bounded creation (a recursive mkdir spins on some procfs paths); 0700: the bundle is the runtime's.
      mkdirBounded(dir!, 'the bundle directory');
      const b = await createBundle(store, image!, dir!, { name: flags.name, terminal: flags.tty });
      if (g.json) printJson(b);
      else writeOut(`${b.dir}\n`);
    });
}
