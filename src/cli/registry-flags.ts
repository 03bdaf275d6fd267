/**
 * What verbs that talk to registries do with their flags (the flags
 * themselves are defined in program.ts, with the help text).
 */
import { UsageError } from '../errors.js';
import { parseCreds } from '../registry/credentials.js';
import type { StoreOptions } from '../store/store.js';
import { type Timeouts, parseSeconds } from '../registry/timeouts.js';

export interface RegistryFlags {
  jobs: string;
  creds?: string;
  insecureRegistry: string[];
  timeout?: string;
  connectTimeout?: string;
}

/** --timeout sets every limit (like wget's), --connect-timeout then overrides connect; unset ones come from env/defaults in the transport. */
function timeoutOptions(flags: RegistryFlags): Partial<Timeouts> | undefined {
  const out: Partial<Timeouts> = {};
  if (flags.timeout !== undefined) {
    const ms = parseSeconds(flags.timeout, '--timeout');
    Object.assign(out, { connectMs: ms, responseMs: ms, idleMs: ms });
  }
  if (flags.connectTimeout !== undefined) out.connectMs = parseSeconds(flags.connectTimeout, '--connect-timeout');
  return Object.keys(out).length ? out : undefined;
}

export function registryStoreOptions(flags: RegistryFlags): StoreOptions {
  return {
    creds: flags.creds ? parseCreds(flags.creds) : undefined,
    insecureRegistries: flags.insecureRegistry,
    timeouts: timeoutOptions(flags),
  };
}

export function parseJobs(flags: RegistryFlags): number {
  const jobs = Number(flags.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError('TSG_USAGE', '--jobs must be a whole number from 1 to 64');
  return jobs;
}
