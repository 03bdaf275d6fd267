/**
 * Where this process stands for rootless operation, from cheap facts only
 * (no spawn, no heavy import: the CLI asks before every verb).
 *
 *   root     euid 0, not in a namespace tsgraph made: everything as before;
 *   outside  euid ≠ 0: the store verbs re-execute tsgraph inside a new
 *            user + mount namespace (enter.ts), as podman does;
 *   inside   uid 0 of a user namespace tsgraph made (the re-executed
 *            process, or anything run by `tsgraph unshare`): the user's own
 *            store, mounts allowed in this mount namespace only.
 *
 * The re-execution marks the child with USERNS_ENV (the outside uid). The
 * mark alone proves nothing (anyone may set an env var), so `inside` also
 * needs a uid map that is not the initial namespace's identity map; what the
 * mark changes is only the defaults of the user who set it (their root,
 * userxattr), never what another user can reach.
 */
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Set in the re-executed process: the uid of the user outside. */
export const USERNS_ENV = '_TSGRAPH_USERNS';
/** Set in the re-executed process: the store root whose path the outside process checked (private-root.ts). */
export const ROOT_CHECKED_ENV = '_TSGRAPH_ROOT_CHECKED';

export type RootlessState = 'root' | 'outside' | 'inside';

/** The initial user namespace maps every id to itself: `0 0 4294967295`. */
export function inInitialUserNs(): boolean {
  try {
    const map = fs.readFileSync('/proc/self/uid_map', 'latin1').trim().split(/\s+/);
    return map.length === 3 && map[0] === '0' && map[1] === '0' && map[2] === '4294967295';
  } catch {
    return true; // no procfs: nothing to tell, behave as before
  }
}

export function rootlessState(env: NodeJS.ProcessEnv = process.env): RootlessState {
  const euid = process.geteuid?.();
  if (euid === undefined) return 'root';
  if (euid !== 0) return 'outside';
  return env[USERNS_ENV] && !inInitialUserNs() ? 'inside' : 'root';
}

/**
 * A non-root user's default root, as podman's: `$XDG_DATA_HOME/tsgraph`,
 * else `~/.local/share/tsgraph`. (Root's stays /var/lib/tsgraph.)
 */
export function rootlessDefaultRoot(env: NodeJS.ProcessEnv = process.env): string {
  const data = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/') ? env.XDG_DATA_HOME : join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'tsgraph');
}

/**
 * Inside the namespace, directories of other users (`/`, `/home` are real
 * root's) show as the overflow uid, so the path-trust walk of
 * util/private-root.ts cannot judge them there. The outside process walked
 * the path with the real owners before entering and names the root it
 * checked; the walk is skipped for exactly that root, in a namespace only.
 */
export function rootCheckedOutside(root: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const checked = env[ROOT_CHECKED_ENV];
  return !!checked && checked === resolve(root) && rootlessState(env) === 'inside';
}
