/**
 * Store.open's options and defaults, and the options of the store's verbs
 * that have no module of their own (store.ts stays the thin facade).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Platform } from '../platform.js';
import type { Credentials } from '../registry/credentials.js';
import type { RegistriesConfig } from '../registry/registries-config.js';
import type { RetryPolicy } from '../registry/retry.js';
import type { Timeouts } from '../registry/timeouts.js';
import type { PullEvent } from './pull.js';

/** The store root when neither `root` nor `$TSGRAPH_ROOT` says otherwise. */
export const DEFAULT_ROOT = '/var/lib/tsgraph';

/** Options of Store.open: root, driver and registry settings. */
export interface StoreOptions {
  /** Store root; default `$TSGRAPH_ROOT` or /var/lib/tsgraph. */
  root?: string | undefined;
  /** Registries where http and unverified TLS are allowed (`host[:port]`). */
  insecureRegistries?: string[] | undefined;
  /** Credentials used for every registry (like `--creds`); otherwise docker's config.json. */
  creds?: Credentials | undefined;
  /** Path to docker's config.json (default `$DOCKER_CONFIG/config.json` or ~/.docker/config.json). */
  dockerConfig?: string | undefined;
  /**
   * Graph driver: `overlay`, `btrfs`, `aufs` or `vfs` (DRIVER_NAMES). Default `$TSGRAPH_DRIVER`, else
   * the driver the root already uses (`meta/driver`), else overlay where an overlay mount works,
   * btrfs on a btrfs root, else vfs. The choice is recorded; another driver on that root is TSG_DRIVER_MISMATCH.
   */
  driver?: string | undefined;
  /** Directories holding `certs.d/<host>/` (default: tsgraph's config dir, then /etc/tsgraph). */
  configDirs?: string[] | undefined;
  /**
   * Registry mirrors, per-host TLS/insecure settings and short-name search
   * registries (docs/registries.md): a registries.json's content or path;
   * default the first `registries.json` in `configDirs`.
   */
  registries?: RegistriesConfig | string | undefined;
  /** Retries of registry requests (attempts, backoff); default: 5 attempts with jittered backoff. */
  retry?: Partial<RetryPolicy> | undefined;
  /**
   * Repair crash leftovers at open (default true): half-made containers,
   * half-unpacked layers. `tsgraph check` opens with false so that it can
   * report them before `--repair` fixes them.
   */
  repairOnOpen?: boolean | undefined;
  /** Registry connect / response / idle limits (default: `$TSGRAPH_TIMEOUT`, else 30 s / 60 s / 60 s). */
  timeouts?: Partial<Timeouts> | undefined;
  /** Called when a request is retried (network error, 5xx, 429). */
  onRetry?: ((info: { url: string; attempt: number; delayMs: number; reason: string }) => void) | undefined;
}

/** Options of Store.pull. */
export interface StorePullOptions {
  /** Unpack layers into the driver after downloading (default true). */
  unpack?: boolean | undefined;
  /** `os/arch[/variant]` or a Platform; default: this host. */
  platform?: string | Platform | undefined;
  /** Parallel layer downloads; default 3. */
  jobs?: number | undefined;
  /** Stops the pull (TSG_ABORTED); what was downloaded stays and a later pull resumes it. */
  signal?: AbortSignal | undefined;
  /** Resolve, download and unpack events, per layer. */
  onProgress?: ((event: PullEvent) => void) | undefined;
}

/** Options of Store.login: the store's registry settings are used for the check. */
export interface StoreLoginOptions {
  /** Cancels the check (TSG_ABORTED); nothing is written then. */
  signal?: AbortSignal | undefined;
}

/** tsgraph's config dir: `$TSGRAPH_CONFIG_DIR`, else `$XDG_CONFIG_HOME/tsgraph`, else ~/.config/tsgraph. */
export function defaultConfigDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const user = env.TSGRAPH_CONFIG_DIR || join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'tsgraph');
  return [user, '/etc/tsgraph'];
}
