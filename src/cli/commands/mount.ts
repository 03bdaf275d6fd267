/** `tsgraph mount IMAGE|CONTAINER`: a writable container layer on an image, mounted. */
import { Command } from '../commander.js';
import type { CommandContext } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export function mountCommand(ctx: CommandContext): Command {
  return new Command('mount')
    .summary('mount an image as a new container layer (or an existing container again)')
    .description(
      'Create a writable container layer on IMAGE, mount image + layer, and print the root path ' +
        '(overlay: the merged dir). Given the name of an existing container, mount it again instead ' +
        '(one more reference; `tsgraph umount` releases one). The image is unpacked first if needed.',
    )
    .argument('<image|container>', 'image name, short name, digest prefix, or container name')
    .option('--name <name>', 'container name (default: <image>-<6 hex>)')
    .option('--read-only', 'mount read-only')
    .action(async (target: string, flags: { name?: string; readOnly?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { requireStore } = await import('../context.js');
      const store = await requireStore(g, target);
      try {
        const { container, path } = await store.mount(target, { name: flags.name, readOnly: flags.readOnly, signal: ctx.signal });
        if (g.json) printJson({ name: container.name, id: container.id, image: container.image, driver: container.driver, readOnly: container.readOnly, path });
        else writeOut(`${path}\n`);
      } finally {
        store.close();
      }
    });
}
