/**
 * Flags every verb that talks to registries takes, and what they open the
 * store with. The flags are part of `--help`; parsing their values needs the
 * registry code (http, https), loaded only then.
 */
import { type Command, Option } from './commander.js';
import { UsageError } from '../errors.js';
import type { StoreOptions } from '../store/store.js';
import type { Timeouts } from '../registry/timeouts.js';

export interface RegistryFlags {
  jobs: string;
  creds?: string;
  insecureRegistry: string[];
  timeout?: string;
  connectTimeout?: string;
}

export function addRegistryFlags(cmd: Command, what: string): Command {
  return cmd
    .option('-j, --jobs <n>', `${what} in parallel`, '3')
    .option('--creds <user:password>', 'registry credentials (default: docker config.json)')
    .addOption(
      new Option('--insecure-registry <host[:port]>', 'allow plain http / unverified TLS for this registry (repeatable)')
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    )
    .option('--timeout <seconds>', 'give up on a registry request that makes no progress for this long: connect, answer, or body (default 30 s connect, 60 s answer/body; env TSGRAPH_TIMEOUT)')
    .option('--connect-timeout <seconds>', 'limit for connecting, TLS included (default 30 s, or --timeout; env TSGRAPH_CONNECT_TIMEOUT)');
}

/** --timeout sets every limit (like wget's), --connect-timeout then overrides connect; unset ones come from env/defaults in the transport. */
async function timeoutOptions(flags: RegistryFlags): Promise<Partial<Timeouts> | undefined> {
  if (flags.timeout === undefined && flags.connectTimeout === undefined) return undefined;
  const { parseSeconds } = await import('../registry/timeouts.js');
  const out: Partial<Timeouts> = {};
  if (flags.timeout !== undefined) {
    const ms = parseSeconds(flags.timeout, '--timeout');
    Object.assign(out, { connectMs: ms, responseMs: ms, idleMs: ms });
  }
  if (flags.connectTimeout !== undefined) out.connectMs = parseSeconds(flags.connectTimeout, '--connect-timeout');
  return Object.keys(out).length ? out : undefined;
}

export async function registryStoreOptions(flags: RegistryFlags): Promise<StoreOptions> {
  const creds = flags.creds ? (await import('../registry/credentials.js')).parseCreds(flags.creds) : undefined;
  return { creds, insecureRegistries: flags.insecureRegistry, timeouts: await timeoutOptions(flags) };
}

export function parseJobs(flags: RegistryFlags): number {
  const jobs = Number(flags.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError('TSG_USAGE', '--jobs must be a whole number from 1 to 64');
  return jobs;
}
