#!/usr/bin/env node
/**
 * The `tsgraph` command. Parsing is commander's; each verb lives in
 * commands/<verb>.ts. Errors print as `tsgraph: <message> (<code>)` (or a
 * JSON object with --json) and exit with the code of their category.
 */
import { Command, CommanderError } from 'commander';
import { BusyError } from '../errors.js';
import { native } from '../native.js';
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
import { checkCommand } from './commands/check.js';
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
    checkCommand(ctx),
    doctorCommand(),
    benchCommand(),
  ];
  for (const cmd of verbs) {
    cmd.exitOverride().configureHelp({ showGlobalOptions: true });
    program.addCommand(cmd);
  }
  return program;
}

/** Exit codes after a signal, as shells report them (128 + signal number). */
export const SIGNAL_EXIT_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
/** How long the work gets to wind down after a signal before the process exits anyway. */
const SIGNAL_GRACE_MS = 1500;

/**
 * SIGINT/SIGTERM end the process within 2 s whatever it is doing (DESIGN:
 * trust rules). The first signal aborts the work (downloads stop, ingests
 * keep their bytes for a resume); a watchdog then exits hard if the work has
 * not wound down, e.g. a wait that does not take the signal. A hard exit is
 * safe: locks are flocks the kernel drops, partial blobs resume, layers still
 * marked incomplete are removed by the next open. A second signal exits at
 * once.
 */
function installSignalHandling(controller: AbortController): { signalled: () => string | undefined; dispose: () => void } {
  let got: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (got) process.exit(SIGNAL_EXIT_CODES[got]);
    got = sig;
    controller.abort(new BusyError('TSG_ABORTED', `interrupted by ${sig}`));
    // unref: the watchdog never keeps a process alive that is already finishing.
    setTimeout(() => process.exit(SIGNAL_EXIT_CODES[sig]), SIGNAL_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The JS watchdog above needs a free event loop; a synchronous call (a big tree copy, a
  // blocking wait) would hold the signal until it returns. The native one does not.
  try {
    native().armSignalWatchdog(SIGNAL_GRACE_MS + 300);
  } catch {
    /* no addon built: --help and --version still work; the JS watchdog remains */
  }
  return {
    signalled: () => got,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const signals = installSignalHandling(controller);
  const program = buildProgram({ signal: controller.signal });
  try {
    await program.parseAsync(argv);
    const sig = signals.signalled();
    // A verb whose success has degrees (check: clean / repaired / damaged) sets process.exitCode.
    return sig ? SIGNAL_EXIT_CODES[sig]! : typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; any other parse error is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
    }
    const code = reportError(err, program.opts<GlobalOptions>());
    const sig = signals.signalled();
    return sig ? SIGNAL_EXIT_CODES[sig]! : code;
  } finally {
    signals.dispose();
  }
}

const code = await main(process.argv);
process.exitCode = code;
