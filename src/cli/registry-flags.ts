/** Flags every verb that talks to registries takes, and what they open the store with. */
import { type Command, Option } from 'commander';
import { UsageError } from '../errors.js';
import { parseCreds } from '../registry/credentials.js';
import type { StoreOptions } from '../store/store.js';

export interface RegistryFlags {
  jobs: string;
  creds?: string;
  insecureRegistry: string[];
}

export function addRegistryFlags(cmd: Command, what: string): Command {
  return cmd
    .option('-j, --jobs <n>', `${what} in parallel`, '3')
    .option('--creds <user:password>', 'registry credentials (default: docker config.json)')
    .addOption(
      new Option('--insecure-registry <host[:port]>', 'allow plain http / unverified TLS for this registry (repeatable)')
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    );
}

export function registryStoreOptions(flags: RegistryFlags): StoreOptions {
  return { creds: flags.creds ? parseCreds(flags.creds) : undefined, insecureRegistries: flags.insecureRegistry };
}

export function parseJobs(flags: RegistryFlags): number {
  const jobs = Number(flags.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError('TSG_USAGE', '--jobs must be a whole number from 1 to 64');
  return jobs;
}
