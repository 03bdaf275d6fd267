/** What every verb gets from main, and the one way verbs open the store. */
import { Store, type StoreOptions } from '../store/store.js';
import type { GlobalOptions } from './output.js';

export interface CommandContext {
  /** Fires on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

export function openStore(g: GlobalOptions, extra: StoreOptions = {}): Promise<Store> {
  return Store.open({ root: g.root, driver: g.driver, ...extra });
}
