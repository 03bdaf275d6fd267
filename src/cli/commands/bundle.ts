/** `tsgraph bundle IMAGE DIR`: an OCI runtime bundle whose rootfs is a tsgraph mount (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { createBundle, removeBundle } from '../../runtime/bundle.js';
import { UsageError } from '../../errors.js';
import { mkdirBounded } from '../../util/private-root.js';
import { requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export interface BundleFlags {
  name?: string;
  tty?: boolean;
  remove?: string;
}

export async function bundle(image: string | undefined, dir: string | undefined, flags: BundleFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (flags.remove && (image || dir)) throw new UsageError('TSG_USAGE', '--remove DIR takes no IMAGE');
  if (!flags.remove && (!image || !dir)) throw new UsageError('TSG_USAGE', 'bundle needs IMAGE and DIR (or --remove DIR)');
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
}
