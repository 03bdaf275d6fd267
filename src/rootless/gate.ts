/**
 * The CLI's rootless gate, run before a verb's action when tsgraph is not
 * root (program.ts loads it only then). For a non-root user outside a
 * namespace, a verb that uses the store:
 *  1. refuses at once, in one line naming every missing piece (TSG_ROOTLESS),
 *     when rootless operation cannot work here — before the store is touched;
 *  2. refuses `mount` and `bundle` (their mounts would vanish with the
 *     namespace when the command exits): they work inside `tsgraph unshare`;
 *  3. otherwise checks the path to the user's root with the real owners
 *     (inside the namespace other users' dirs show as nobody), then runs the
 *     same command line again inside a new user + mount namespace and exits
 *     with its status. `tsgraph unshare [-- CMD…]` runs CMD (or a shell) there.
 */
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { openPrivateRoot } from '../util/private-root.js';
import { runInUserNamespace } from './enter.js';
import { missingPieces, requireRootless } from './requirements.js';
import { ROOT_CHECKED_ENV, USERNS_ENV, rootlessDefaultRoot, rootlessState } from './userns.js';

/** Verbs that never touch a store: no namespace needed. */
const NO_STORE = new Set(['login', 'logout']);
/** Verbs whose result is a mount: only useful where the mount stays, inside `tsgraph unshare`. */
const MOUNTING = new Set(['mount', 'bundle']);

export interface GateGlobals {
  root?: string | undefined;
}

/** The root a rootless verb uses: --root, $TSGRAPH_ROOT, else $XDG_DATA_HOME/tsgraph. */
export function rootlessRoot(globals: GateGlobals, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(globals.root ?? env.TSGRAPH_ROOT ?? rootlessDefaultRoot(env));
}

/**
 * Returns when the verb runs here; otherwise the process exits with the
 * status of the verb run in the namespace (or this throws the refusal).
 * `command`: what `tsgraph unshare` runs (undefined: the same tsgraph verb again).
 */
export async function rootlessGate(verb: string, globals: GateGlobals, command?: string[]): Promise<void> {
  if (rootlessState() !== 'outside' || NO_STORE.has(verb)) return;
  // doctor reports the missing pieces instead of being refused for them.
  if (verb === 'doctor' && missingPieces().missing.length) return;
  const plan = requireRootless();
  if (MOUNTING.has(verb)) {
    throw new UsageError(
      'TSG_USAGE',
      `as a non-root user, \`tsgraph ${verb}\` works inside \`tsgraph unshare\` (the mount exists only in that namespace): tsgraph unshare -- tsgraph ${verb} …`,
      { data: { verb } },
    );
  }
  const root = rootlessRoot(globals);
  // With the real owners: nobody else may be able to swap the path to the root.
  openPrivateRoot(root, { create: false });
  const env: NodeJS.ProcessEnv = { ...process.env, [USERNS_ENV]: String(plan.uid), TSGRAPH_ROOT: root, [ROOT_CHECKED_ENV]: root };
  const argv = command ?? [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  const status = await runInUserNamespace(plan, argv, { env });
  process.exit(status);
}
