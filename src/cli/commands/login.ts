/** `tsgraph login` / `tsgraph logout`: credentials in docker's config.json. */
import { Command } from '../commander.js';
import { UsageError } from '../../errors.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

/**
 * reference.ts's DEFAULT_REGISTRY, spelled out: importing it for a help
 * default would load the digest code (node:crypto) into every `--help`.
 * test/cli/start.test.ts checks the two agree.
 */
export const LOGIN_DEFAULT_REGISTRY = 'docker.io';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export function loginCommand(): Command {
  return new Command('login')
    .summary("log in to a registry (stores credentials in docker's config.json)")
    .description(
      "Check USERNAME and a password against REGISTRY (default docker.io), then store them in docker's config.json " +
        '($DOCKER_CONFIG or ~/.docker), which later pulls and pushes use. Give the password with --password-stdin.',
    )
    .argument('[registry]', 'registry host[:port]', LOGIN_DEFAULT_REGISTRY)
    .requiredOption('-u, --username <name>', 'user name')
    .option('--password-stdin', 'read the password from standard input')
    .option('--insecure-registry', 'allow plain http / unverified TLS for this registry')
    .action(async (registry: string, flags: { username: string; passwordStdin?: boolean; insecureRegistry?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (!flags.passwordStdin) throw new UsageError('TSG_USAGE', 'give the password with --password-stdin (it never goes on the command line)');
      const password = await readStdin();
      if (!password) throw new UsageError('TSG_USAGE', 'empty password on standard input');
      const [{ parseCreds }, { login }, { defaultConfigDirs }] = await Promise.all([
        import('../../registry/credentials.js'),
        import('../../registry/login.js'),
        import('../../store/store.js'),
      ]);
      const creds = parseCreds(`${flags.username}:${password}`);
      const path = await login(registry, creds, { configDirs: defaultConfigDirs(), insecureRegistries: flags.insecureRegistry ? [registry] : [] });
      if (g.json) printJson({ registry, username: flags.username, config: path });
      else writeOut(`Login Succeeded (${path})\n`);
    });
}

export function logoutCommand(): Command {
  return new Command('logout')
    .summary("remove a registry's stored credentials")
    .description("Remove REGISTRY's entry from docker's config.json.")
    .argument('[registry]', 'registry host[:port]', LOGIN_DEFAULT_REGISTRY)
    .action(async (registry: string, _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { logout } = await import('../../registry/login.js');
      const removed = logout(registry);
      if (g.json) printJson({ registry, removed });
      else writeOut(removed ? `Removed login credentials for ${registry}\n` : `Not logged in to ${registry}\n`);
    });
}
