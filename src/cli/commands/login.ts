/** `tsgraph login` / `tsgraph logout`: credentials in docker's config.json (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { UsageError } from '../../errors.js';
import { parseCreds } from '../../registry/credentials.js';
import { login as registryLogin, logout as registryLogout } from '../../registry/login.js';
import { defaultConfigDirs } from '../../store/store.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export interface LoginFlags {
  username: string;
  passwordStdin?: boolean;
  insecureRegistry?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export async function login(registry: string, flags: LoginFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!flags.passwordStdin) throw new UsageError('TSG_USAGE', 'give the password with --password-stdin (it never goes on the command line)');
  const password = await readStdin();
  if (!password) throw new UsageError('TSG_USAGE', 'empty password on standard input');
  const creds = parseCreds(`${flags.username}:${password}`);
  const path = await registryLogin(registry, creds, { configDirs: defaultConfigDirs(), insecureRegistries: flags.insecureRegistry ? [registry] : [] });
  if (g.json) printJson({ registry, username: flags.username, config: path });
  else writeOut(`Login Succeeded (${path})\n`);
}

export async function logout(registry: string, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const removed = registryLogout(registry);
  if (g.json) printJson({ registry, removed });
  else writeOut(removed ? `Removed login credentials for ${registry}\n` : `Not logged in to ${registry}\n`);
}
