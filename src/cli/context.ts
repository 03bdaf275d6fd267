/** What every verb gets from main, and the one way verbs open the store. */
import * as fs from 'node:fs';
import { resolve } from 'node:path';
import { NotFoundError } from '../errors.js';
import { DEFAULT_ROOT, Store, type StoreOptions } from '../store/store.js';
import { rootlessDefaultRoot } from '../rootless/userns.js';
import type { GlobalOptions } from './output.js';

export interface CommandContext {
  /** Fires on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

/**
 * The root a verb works on: --root, else $TSGRAPH_ROOT, else /var/lib/tsgraph
 * for root and $XDG_DATA_HOME/tsgraph (~/.local/share/tsgraph) for anyone
 * else, as podman. (In the user namespace a rootless verb runs in, the gate
 * has set $TSGRAPH_ROOT to the user's root.)
 */
export function storeRoot(g: GlobalOptions): string {
  return resolve(g.root ?? process.env.TSGRAPH_ROOT ?? (process.geteuid?.() === 0 ? DEFAULT_ROOT : rootlessDefaultRoot()));
}

/** Opens the store, creating the root when missing (verbs that write). */
export function openStore(g: GlobalOptions, extra: StoreOptions = {}): Promise<Store> {
  return Store.open({ root: storeRoot(g), driver: g.driver, ...extra });
}

/**
 * For verbs that only read or act on existing things (everything but pull
 * and doctor): a missing root is never created (a typo
 * in --root must not leave directories behind). Returns undefined when the
 * root does not exist; the verb prints its empty result or a not-found.
 */
export async function openExistingStore(g: GlobalOptions, extra: StoreOptions = {}): Promise<Store | undefined> {
  if (!fs.existsSync(storeRoot(g))) return undefined;
  return openStore(g, extra);
}

/** Like openExistingStore, but a missing root is `what` not found. */
export async function requireStore(g: GlobalOptions, what: string, extra: StoreOptions = {}): Promise<Store> {
  const store = await openExistingStore(g, extra);
  if (!store) throw new NotFoundError('TSG_NOT_FOUND', `${what} is not in the store (there is no store at ${storeRoot(g)})`, { data: { root: storeRoot(g) } });
  return store;
}
