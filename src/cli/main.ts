#!/usr/bin/env node
/**
 * The `tsgraph` command. Parsing is commander's; the verbs are defined in
 * program.ts and act in commands/<verb>.ts. Errors print as `tsgraph: <message> (<code>)` (or a
 * JSON object with --json) and exit with the code of their category.
 *
 * Start cost: a CLI that loads the store, the registry client, zod and the
 * layer code before it reads argv spends ~0.2 s before doing anything. So
 * this file imports nothing at its top but types, `--version` alone is
 * answered before anything else loads, the program's definitions (every
 * verb's name, options, help text: program.ts) load with commander only, and
 * a verb's action (commands/<verb>.ts) loads what its work needs when it
 * runs. test/cli/start.test.ts holds the help text and what each start loads.
 */
import type { Command } from './commander.js';

export const VERSION = '0.1.0';

/** Exit codes after a signal, as shells report them (128 + signal number). */
export const SIGNAL_EXIT_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
/** How long the work gets to wind down after a signal before the process exits anyway. */
const SIGNAL_GRACE_MS = 1500;

/**
 * The JS watchdog of installSignalHandling needs a free event loop; a
 * synchronous call (a big tree copy, a blocking wait) would hold the signal
 * until it returns. The native one does not. Armed when a verb's action is
 * about to run: help, version and usage errors never load the addon.
 */
async function armNativeWatchdog(): Promise<void> {
  try {
    const { native } = await import('../native.js');
    native().armSignalWatchdog(SIGNAL_GRACE_MS + 300);
  } catch {
    /* no addon built: the JS watchdog remains */
  }
}

/**
 * SIGINT/SIGTERM end the process within 2 s whatever it is doing (DESIGN:
 * trust rules). The first signal aborts the work (downloads stop, ingests
 * keep their bytes for a resume); a watchdog then exits hard if the work has
 * not wound down, e.g. a wait that does not take the signal. A hard exit is
 * safe: locks are flocks the kernel drops, partial blobs resume, layers still
 * marked incomplete are removed by the next open. A second signal exits at
 * once.
 */
function installSignalHandling(controller: AbortController, abortReason: (sig: string) => Error): { signalled: () => string | undefined; dispose: () => void } {
  let got: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (got) process.exit(SIGNAL_EXIT_CODES[got]);
    got = sig;
    controller.abort(abortReason(sig));
    // unref: the watchdog never keeps a process alive that is already finishing.
    setTimeout(() => process.exit(SIGNAL_EXIT_CODES[sig]), SIGNAL_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signalled: () => got,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  const { InterruptedError } = await import('../errors.js');
  const controller = new AbortController();
  // First, so loading the verb is covered too.
  const signals = installSignalHandling(controller, (sig) => new InterruptedError('TSG_ABORTED', `interrupted by ${sig}`));
  let program: Command | undefined;
  try {
    const { buildProgram, requestedVerb } = await import('./program.js');
    program = await buildProgram({ signal: controller.signal }, { version: VERSION, verb: requestedVerb(argv.slice(2)), beforeAction: armNativeWatchdog });
    await program.parseAsync(argv);
    const sig = signals.signalled();
    // A verb whose success has degrees (check: clean / repaired / damaged) sets process.exitCode.
    return sig ? SIGNAL_EXIT_CODES[sig]! : typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    const { CommanderError } = await import('./commander.js');
    if (err instanceof CommanderError) {
      // Help and version exit 0. Bare `tsgraph` (help shown because no verb was given) is a usage
      // error like any other parse error: exit 2, as docker and podman do for a missing command.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      if (err.code === 'commander.help') return err.exitCode === 0 ? 0 : 2;
      // Every other parse error prints as tsgraph's errors do (one line with its code, or JSON).
      const { UsageError } = await import('../errors.js');
      const { reportError } = await import('./output.js');
      const message = `${err.message.replace(/^error: /, '')} (see --help)`;
      const end = argv.indexOf('--');
      const json = (end < 0 ? argv : argv.slice(0, end)).includes('--json');
      return reportError(new UsageError('TSG_USAGE', message, { data: { reason: err.code } }), { json });
    }
    const { reportError } = await import('./output.js');
    const code = reportError(err, program?.opts() ?? {});
    const sig = signals.signalled();
    return sig ? SIGNAL_EXIT_CODES[sig]! : code;
  } finally {
    signals.dispose();
  }
}

// `tsgraph --version` alone: nothing else to load.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) process.stdout.write(`${VERSION}\n`);
else process.exitCode = await main(process.argv);
