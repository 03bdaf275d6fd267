/** `tsgraph bundle IMAGE DIR`: an OCI runtime bundle whose rootfs is a tsgraph mount (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { createBundle, removeBundle } from '../../runtime/bundle.js';
import { UsageError } from '../../errors.js';
import * as fs from 'node:fs';
import { dirname, resolve } from 'node:path';
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
  // createBundle makes the directory (bounded, 0700); if it then fails (no such image, a mount
  // error), the directories this run made are removed again: a failed bundle leaves nothing.
  const made = firstMissing(resolve(dir!));
  let b;
  try {
    b = await createBundle(store, image!, dir!, { name: flags.name, terminal: flags.tty });
  } catch (err) {
    if (made) removeEmptyUpTo(resolve(dir!), made);
    throw err;
  }
  if (g.json) printJson(b);
  else writeOut(`${b.dir}\n`);
}

/** The topmost directory of `dir`'s path that does not exist yet (what a mkdir -p would make first). */
function firstMissing(dir: string): string | undefined {
  let missing: string | undefined;
  for (let cur = dir; !fs.existsSync(cur); cur = dirname(cur)) {
    missing = cur;
    if (dirname(cur) === cur) break;
  }
  return missing;
}

/** rmdir from `dir` up to and including `top`, stopping at the first that is not empty (or gone). */
function removeEmptyUpTo(dir: string, top: string): void {
  for (let cur = dir; ; cur = dirname(cur)) {
    try {
      fs.rmdirSync(cur);
    } catch {
      return;
    }
    if (cur === top || dirname(cur) === cur) return;
  }
}
