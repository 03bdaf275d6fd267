/**
 * `tsgraph unshare [-- CMD ARGS…]` (defined in ../program.ts), like `podman
 * unshare`: runs CMD, or a shell, as uid 0 of the user's namespace, where the
 * files of their root have their real (mapped) owners, tsgraph's mounts are
 * made and seen, and runc runs. For a non-root user the gate
 * (rootless/gate.ts) has already entered the namespace and runs CMD there
 * directly; this action runs when already inside (a nested unshare: CMD runs
 * as it is) and refuses for root, who needs no user namespace.
 */
import { spawn } from 'node:child_process';
import { UsageError } from '../../errors.js';
import { rootlessState } from '../../rootless/userns.js';

/** What `tsgraph unshare` runs when given no command. */
export function unshareCommand(args: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  return args.length ? args : [env.SHELL || '/bin/sh'];
}

export async function unshare(args: string[]): Promise<void> {
  if (rootlessState() === 'root') {
    throw new UsageError('TSG_USAGE', 'tsgraph unshare is for non-root users: root needs no user namespace (run the command directly)');
  }
  const [cmd, ...rest] = unshareCommand(args);
  const child = spawn(cmd!, rest, { stdio: 'inherit' });
  const status = await new Promise<number>((resolve, reject) => {
    child.on('error', (err) => reject(new UsageError('TSG_USAGE', `tsgraph unshare: cannot run ${cmd}: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGINT' ? 2 : 15)));
  });
  process.exitCode = status;
}
