#!/usr/bin/env node
/**
 * The `tsgraph` command. Parsing is commander's; each verb lives in
 * commands/<verb>.ts. Errors print as `tsgraph: <message> (<code>)` (or a
 * JSON object with --json) and exit with the code of their category.
 */
import { Command, CommanderError } from 'commander';
import { imagesCommand } from './commands/images.js';
import { pullCommand } from './commands/pull.js';
import { mountCommand } from './commands/mount.js';
import { umountCommand } from './commands/umount.js';
import { containersCommand } from './commands/containers.js';
import { diffCommand } from './commands/diff.js';
import { commitCommand } from './commands/commit.js';
import { pushCommand } from './commands/push.js';
import { bundleCommand } from './commands/bundle.js';
import { gcCommand, rmCommand, rmiCommand } from './commands/housekeeping.js';
import { doctorCommand } from './commands/doctor.js';
import { benchCommand } from './commands/bench.js';
import { inspectCommand, tagCommand } from './commands/inspect.js';
import { loginCommand, logoutCommand } from './commands/login.js';
import type { CommandContext } from './context.js';
import { type GlobalOptions, reportError } from './output.js';

export function buildProgram(ctx: CommandContext): Command {
  const program = new Command('tsgraph')
    .description('OCI image store and union-filesystem graph driver')
    .version('0.1.0', '-v, --version')
    .option('--root <dir>', 'store root (default $TSGRAPH_ROOT or /var/lib/tsgraph)')
    .option('--driver <name>', 'graph driver: overlay, btrfs, aufs or vfs (default $TSGRAPH_DRIVER, the root\'s own, else overlay where it works, btrfs on btrfs, vfs)')
    .option('--json', 'machine-readable output (errors too)')
    .option('--debug', 'print stack traces on errors')
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: true })
    .exitOverride();
  const verbs = [
    pullCommand(ctx),
    pushCommand(ctx),
    loginCommand(),
    logoutCommand(),
    imagesCommand(),
    inspectCommand(),
    tagCommand(),
    mountCommand(ctx),
    umountCommand(),
    containersCommand(),
    diffCommand(),
    commitCommand(),
    bundleCommand(),
    rmCommand(),
    rmiCommand(),
    gcCommand(),
    doctorCommand(),
    benchCommand(),
  ];
  for (const cmd of verbs) {
    cmd.exitOverride().configureHelp({ showGlobalOptions: true });
    program.addCommand(cmd);
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const program = buildProgram({ signal: controller.signal });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; any other parse error is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    return reportError(err, program.opts<GlobalOptions>());
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const code = await main(process.argv);
process.exitCode = code;
