/** `tsgraph umount NAME`: release a container's mount (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function umount(name: string, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `container ${name}`);
  try {
    await store.umount(name);
    const state = store.listContainers().find((c) => c.name === name);
    if (g.json) printJson({ name, mounted: state?.mounted ?? false });
    else writeOut(`${name}\n`);
  } finally {
    await store.close();
  }
}
