/** `tsgraph mount IMAGE|CONTAINER`: a writable container layer on an image, mounted (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { type CommandContext, requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function mount(ctx: CommandContext, target: string, flags: { name?: string; readOnly?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, target);
  try {
    const { container, path } = await store.mount(target, { name: flags.name, readOnly: flags.readOnly, signal: ctx.signal });
    if (g.json) printJson({ name: container.name, id: container.id, image: container.image, driver: container.driver, readOnly: container.readOnly, path });
    else writeOut(`${path}\n`);
  } finally {
    await store.close();
  }
}
