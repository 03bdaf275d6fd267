#!/usr/bin/env node
/**
 * The `tsgraph` command. Parsing is commander's; each verb lives in
 * commands/<verb>.ts. Errors print as `tsgraph: <message> (<code>)` (or a
 * JSON object with --json) and exit with the code of their category.
 *
 * Start cost: a CLI that loads the store, the registry client, zod and the
 * layer code before it reads argv spends ~0.2 s before doing anything. So
 * this file imports nothing at its top but types, `--version` alone is
 * answered before anything else loads, only the verb being run is loaded
 * (commander and the verb's definition: names, options, help text), and a
 * verb loads what its work needs inside its action. `--help` lists every
 * verb from their definitions, which import nothing heavy.
 * test/cli/start.test.ts holds the help text and what each start loads.
 */
import type { Command } from './commander.js';
import type { CommandContext } from './context.js';

export const VERSION = '0.1.0';

type VerbLoader = (ctx: CommandContext) => Promise<Command>;

/** Every verb by name, in registration order; aliases are in VERB_ALIASES. */
export const VERBS: Record<string, VerbLoader> = {
  pull: async (ctx) => (await import('./commands/pull.js')).pullCommand(ctx),
  push: async (ctx) => (await import('./commands/push.js')).pushCommand(ctx),
  login: async () => (await import('./commands/login.js')).loginCommand(),
  logout: async () => (await import('./commands/login.js')).logoutCommand(),
  images: async () => (await import('./commands/images.js')).imagesCommand(),
  inspect: async () => (await import('./commands/inspect.js')).inspectCommand(),
  tag: async () => (await import('./commands/inspect.js')).tagCommand(),
  mount: async (ctx) => (await import('./commands/mount.js')).mountCommand(ctx),
  umount: async () => (await import('./commands/umount.js')).umountCommand(),
  containers: async () => (await import('./commands/containers.js')).containersCommand(),
  diff: async () => (await import('./commands/diff.js')).diffCommand(),
  commit: async () => (await import('./commands/commit.js')).commitCommand(),
  bundle: async () => (await import('./commands/bundle.js')).bundleCommand(),
  rm: async () => (await import('./commands/housekeeping.js')).rmCommand(),
  rmi: async () => (await import('./commands/housekeeping.js')).rmiCommand(),
  gc: async () => (await import('./commands/housekeeping.js')).gcCommand(),
  check: async (ctx) => (await import('./commands/check.js')).checkCommand(ctx),
  doctor: async () => (await import('./commands/doctor.js')).doctorCommand(),
  bench: async () => (await import('./commands/bench.js')).benchCommand(),
};

export const VERB_ALIASES: Record<string, string> = { ps: 'containers', unmount: 'umount' };

/**
 * `bench` in the full list (`tsgraph --help`, an unknown verb): commands/bench.ts
 * loads the benchmark code (the whole store) at its top, ~0.15 s, so the list
 * shows this stand-in. start.test.ts checks it renders like the real one.
 */
export async function benchStandIn(): Promise<Command> {
  const { Command } = await import('./commander.js');
  return new Command('bench').summary('benchmarks (copy-up)');
}

function verbNamed(word: string | undefined): string | undefined {
  if (word === undefined) return undefined;
  if (Object.hasOwn(VERBS, word)) return word;
  return Object.hasOwn(VERB_ALIASES, word) ? VERB_ALIASES[word] : undefined;
}

/**
 * The one verb `args` (argv after the script) runs, when that is certain: the
 * first operand after the global options, or the operand of `help`. Anything
 * else — no verb, an option only the program level can judge (--help, -v, a
 * typo), an unknown word (commander suggests the nearest verb from all names)
 * — is undefined: then every verb is registered, as a full program would be.
 */
export function requestedVerb(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--root' || a === '--driver') {
      i++;
      continue;
    }
    if (a === '--json' || a === '--debug' || a.startsWith('--root=') || a.startsWith('--driver=')) continue;
    if (a.startsWith('-')) return undefined;
    return a === 'help' ? verbNamed(args[i + 1]) : verbNamed(a);
  }
  return undefined;
}

/** The program with `only` registered, or every verb (bench as its stand-in). */
export async function buildProgram(ctx: CommandContext, only?: string): Promise<Command> {
  const { Command, Help } = await import('./commander.js');
  const program = new Command('tsgraph')
    .description('OCI image store and union-filesystem graph driver')
    .version(VERSION, '-v, --version')
    .option('--root <dir>', 'store root (default $TSGRAPH_ROOT or /var/lib/tsgraph)')
    .option('--driver <name>', 'graph driver: overlay, btrfs, aufs or vfs (default $TSGRAPH_DRIVER, the root\'s own, else overlay where it works, btrfs on btrfs, vfs)')
    .option('--json', 'machine-readable output (errors too)')
    .option('--debug', 'print stack traces on errors')
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({
      showGlobalOptions: true,
      // Verbs sorted by name. Not commander's sortSubcommands: it sorts with localeCompare, whose
      // first call builds an ICU collator, ~10 ms of every `--help`; for lowercase ASCII names
      // code-unit order is the same.
      visibleCommands(cmd: Command): Command[] {
        return Help.prototype.visibleCommands.call(this, cmd).sort((a, b) => (a.name() < b.name() ? -1 : a.name() > b.name() ? 1 : 0));
      },
    })
    .exitOverride();
  const names = only ? [only] : Object.keys(VERBS);
  const verbs = await Promise.all(names.map((n) => (n === 'bench' && !only ? benchStandIn() : VERBS[n]!(ctx))));
  for (const cmd of verbs) {
    cmd.exitOverride().configureHelp({ showGlobalOptions: true });
    program.addCommand(cmd);
  }
  // Before any action (not for help or a usage error): the native watchdog.
  program.hook('preAction', armNativeWatchdog);
  return program;
}

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
  const { BusyError } = await import('../errors.js');
  const controller = new AbortController();
  // First, so loading the verb is covered too.
  const signals = installSignalHandling(controller, (sig) => new BusyError('TSG_ABORTED', `interrupted by ${sig}`));
  let program: Command | undefined;
  try {
    program = await buildProgram({ signal: controller.signal }, requestedVerb(argv.slice(2)));
    await program.parseAsync(argv);
    const sig = signals.signalled();
    // A verb whose success has degrees (check: clean / repaired / damaged) sets process.exitCode.
    return sig ? SIGNAL_EXIT_CODES[sig]! : typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    const { CommanderError } = await import('./commander.js');
    if (err instanceof CommanderError) {
      // Help and version exit 0; any other parse error is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return 2;
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
