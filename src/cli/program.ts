/**
 * The shape of the `tsgraph` command: every verb's name, arguments, options
 * and help text, in this one module, and nothing else. Each action is in
 * commands/<verb>.ts, imported when the verb runs: `tsgraph --help` and
 * `<verb> --help` load this file and commander only (one module for all
 * definitions: ~13 ms less CPU for `--help` than one module per verb), and a
 * verb loads the store, registry and layer code its work needs and no other
 * verb's. test/cli/start.test.ts holds the help text and what each start loads.
 */
import { Command, Help, Option } from './commander.js';
import type { CommandContext } from './context.js';
import type { PullFlags } from './commands/pull.js';
import type { PushFlags } from './commands/push.js';
import type { CommitFlags } from './commands/commit.js';
import type { BundleFlags } from './commands/bundle.js';
import type { CheckFlags } from './commands/check.js';
import type { LoginFlags } from './commands/login.js';
import type { MountFlags } from './commands/mount.js';
import type { ImagesFlags } from './commands/images.js';
import type { ContainersFlags } from './commands/containers.js';
import type { LoadFlags, SaveFlags } from './commands/archive.js';

/**
 * reference.ts's DEFAULT_REGISTRY, spelled out: importing it for a help
 * default would load the digest code (node:crypto) into every `--help`.
 * start.test.ts checks the two agree.
 */
export const LOGIN_DEFAULT_REGISTRY = 'docker.io';

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

const VERB_DEFINITIONS = {
  pull: (ctx: CommandContext) =>
    addRegistryFlags(
      new Command('pull')
        .summary('pull an image from a registry or an OCI layout into the store')
        .description(
          'Pull an image into the content store. REF is a registry reference (busybox, ghcr.io/org/app:1.2, ' +
            'repo@sha256:...) or oci:DIR[:TAG] for an OCI image layout on disk. Blobs already stored are not ' +
            'fetched again; an interrupted pull resumes where it stopped.',
        )
        .argument('<ref>', 'image reference or oci:DIR[:TAG]')
        .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)'),
      'layers downloaded',
    )
      .option('-q, --quiet', 'print only the image name when done')
      .option('--no-unpack', 'only download; unpack into the driver later (on first mount)')
      .action(async (ref: string, flags: PullFlags, cmd: Command) => (await import('./commands/pull.js')).pull(ctx, ref, flags, cmd)),

  push: (ctx: CommandContext) =>
    addRegistryFlags(
      new Command('push')
        .summary('push an image to a registry')
        .description(
          'Upload image REF to DEST (default: its own name). Blobs the registry has are skipped (HEAD), blobs another ' +
            'repository of the same registry holds are cross-mounted, large blobs go in chunks; the manifest goes last.',
        )
        .argument('<ref>', 'image in the store')
        .argument('[dest]', 'destination reference (registry/repo:tag)'),
      'blobs uploaded',
    )
      .option('--chunk-size <bytes>', 'PATCH chunk size for large blobs', String(16 << 20))
      .option('-q, --quiet', 'print only the digest')
      .action(async (ref: string, dest: string | undefined, flags: PushFlags, cmd: Command) => (await import('./commands/push.js')).push(ctx, ref, dest, flags, cmd)),

  login: () =>
    new Command('login')
      .summary("log in to a registry (stores credentials in docker's config.json)")
      .description(
        "Check USERNAME and a password against REGISTRY (default docker.io), then store them in docker's config.json " +
          '($DOCKER_CONFIG or ~/.docker), or in the credential helper it names for REGISTRY (credsStore, credHelpers), ' +
          'which later pulls and pushes use. On a terminal, a missing user name and the password are asked for ' +
          '(the password without echo); otherwise give the password with --password-stdin.',
      )
      .argument('[registry]', 'registry host[:port]', LOGIN_DEFAULT_REGISTRY)
      .option('-u, --username <name>', 'user name')
      .option('--password-stdin', 'read the password from standard input')
      .option('--insecure-registry', 'allow plain http / unverified TLS for this registry')
      .action(async (registry: string, flags: LoginFlags, cmd: Command) => (await import('./commands/login.js')).login(registry, flags, cmd)),

  logout: () =>
    new Command('logout')
      .summary("remove a registry's stored credentials")
      .description("Remove REGISTRY's entry from docker's config.json (and erase it from the credential helper configured for REGISTRY).")
      .argument('[registry]', 'registry host[:port]', LOGIN_DEFAULT_REGISTRY)
      .action(async (registry: string, _f: unknown, cmd: Command) => (await import('./commands/login.js')).logout(registry, cmd)),

  images: () =>
    new Command('images')
      .summary('list images in the store')
      .description(
        'List the images registered in the store (those named REPO[:TAG], a docker reference pattern, when given): ' +
          'repository, tag, image ID (the config digest), when the image was created, and its unpacked size.',
      )
      .argument('[repo[:tag]]', 'only images this name or pattern matches (busybox, localhost/app:1, busy*)')
      .option('-q, --quiet', 'print only names')
      .option('--digests', 'show a DIGEST column (the digest each name resolved to)')
      .option('--no-trunc', 'show whole IDs')
      .addOption(
        new Option('-f, --filter <key=value>', 'reference=PATTERN, dangling=true|false, before=IMAGE, since=IMAGE (repeatable; different keys must all hold)')
          .argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]),
      )
      .option('--format <template>', 'Go template: {{.Repository}} {{.Tag}} {{.ID}} {{.Digest}} {{.CreatedSince}} {{.CreatedAt}} {{.Size}} {{.Platform}} {{.Name}}, {{json .}}; `table ` prefix for columns')
      .action(async (repo: string | undefined, flags: ImagesFlags, cmd: Command) => (await import('./commands/images.js')).images(repo, flags, cmd)),

  inspect: () =>
    new Command('inspect')
      .summary('show an image (record, manifest, config) or a container as JSON')
      .description('Print what tsgraph knows about IMAGE (its record, manifest and config) or CONTAINER (its record and mount state) as JSON.')
      .argument('<target>', 'image name, short name, digest prefix, or container name')
      .option('-f, --format <template>', "Go template ('{{.Config.Env}}', '{{index .Config.Labels \"a.b\"}}', '{{json .Config}}'), or one top-level field (manifestDigest)")
      .action(async (target: string, flags: { format?: string }, cmd: Command) => (await import('./commands/inspect.js')).inspect(target, flags, cmd)),

  tag: () =>
    new Command('tag')
      .summary('give an image another name')
      .description('Register TARGET as another name for the image SOURCE (same content, nothing copied), like docker tag.')
      .argument('<source>', 'image in the store')
      .argument('<target>', 'new name (registry/repo:tag)')
      .action(async (source: string, target: string, _f: unknown, cmd: Command) => (await import('./commands/inspect.js')).tag(source, target, cmd)),

  mount: (ctx: CommandContext) =>
    new Command('mount')
      .summary('mount an image as a new container layer (or an existing container again)')
      .description(
        'Create a writable container layer on IMAGE, mount image + layer, and print the root path ' +
          '(overlay: the merged dir). Given the name of an existing container, mount it again instead ' +
          '(one more reference; `tsgraph umount` releases one). The image is unpacked first if needed.',
      )
      .argument('<image|container>', 'image name, short name, digest prefix, or container name')
      .option('--name <name>', 'container name (default: <image>-<6 hex>)')
      .option('--read-only', 'mount read-only')
      .option('--label <context>', 'SELinux context= label for every file (overlay only)')
      .addOption(
        new Option('--opt <option>', 'extra overlay option (repeatable): xino=on|off|auto, uuid=on|off|null|auto, default_permissions')
          .argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]),
      )
      .addOption(
        new Option('--uidmap <container:host:size>', 'idmapped mount: map these uids as a user namespace would (repeatable)')
          .argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]),
      )
      .addOption(
        new Option('--gidmap <container:host:size>', 'gids for --uidmap (repeatable; default: the uid map)')
          .argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]),
      )
      .option('--userns <path>', 'idmapped mount through the user namespace at PATH (e.g. /proc/PID/ns/user)')
      .action(async (target: string, flags: MountFlags, cmd: Command) => (await import('./commands/mount.js')).mount(ctx, target, flags, cmd)),

  umount: () =>
    new Command('umount')
      .alias('unmount')
      .summary("release a container's mount (the layer stays; `tsgraph rm` deletes it)")
      .description('Drop one mount reference of container NAME; the filesystem is unmounted when none are left.')
      .argument('<name>', 'container name')
      .action(async (name: string, _f: unknown, cmd: Command) => (await import('./commands/umount.js')).umount(name, cmd)),

  containers: () =>
    new Command('containers')
      .alias('ps')
      .summary('list container layers and whether they are mounted')
      .description('List every container layer, mounted or not: name, image, driver, mount state and root path.')
      .option('-a, --all', 'every container (the default: unmounted ones are listed too)')
      .option('-s, --size', "show each container's own changes (and with its image: virtual)")
      .option('-q, --quiet', 'print only names')
      .option('--format <template>', 'Go template: {{.Names}} {{.ID}} {{.Image}} {{.Driver}} {{.Mounted}} {{.Path}} {{.CreatedAt}} {{.RunningFor}} {{.Size}}; `table ` prefix for columns')
      .action(async (flags: ContainersFlags, cmd: Command) => (await import('./commands/containers.js')).containers(flags, cmd)),

  diff: () =>
    new Command('diff')
      .summary("list a container's changes (A/C/D), or write them as an OCI layer tar")
      .description(
        'Show files added (A), changed (C) and deleted (D) in container NAME against its image, like docker diff. ' +
          'On overlay only the container layer is read (native diff). With --output the change is written as an OCI ' +
          'layer tar (whiteouts as .wh. files, opaque dirs as .wh..wh..opq, xattrs as PAX).',
      )
      .argument('<name>', 'container name')
      .option('-o, --output <file|->', 'write the layer tar to FILE (or - for stdout)')
      .action(async (name: string, flags: { output?: string }, cmd: Command) => (await import('./commands/diff.js')).diff(name, flags, cmd)),

  commit: () =>
    new Command('commit')
      .summary('create an image from a container layer')
      .description(
        "Turn container NAME's changes into a new layer blob, append it to the image's config (diff_ids, history) " +
          'and write a new OCI manifest; register it as REF. --change applies Dockerfile instructions like docker commit.',
      )
      .argument('<name>', 'container name')
      .argument('<ref>', 'name for the new image (e.g. localhost/app:v2)')
      .addOption(new Option('--compress <kind>', 'layer compression').choices(['gzip', 'zstd', 'none']).default('gzip'))
      .addOption(
        new Option('-c, --change <instruction>', 'CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, EXPOSE or VOLUME (repeatable)')
          .argParser((v: string, prev: string[]) => [...prev, v])
          .default([]),
      )
      .option('-m, --message <text>', 'history comment')
      .option('-a, --author <name>', 'author')
      .action(async (name: string, ref: string, flags: CommitFlags, cmd: Command) => (await import('./commands/commit.js')).commit(name, ref, flags, cmd)),

  bundle: () =>
    new Command('bundle')
      .summary('make (or --remove) an OCI runtime bundle for runc')
      .description(
        'Mount IMAGE as a new container and write DIR/config.json (process from the image: Entrypoint + Cmd, Env, ' +
          'WorkingDir, User; namespaces and mounts like `runc spec`). `tsgraph bundle --remove DIR` unmounts and deletes it.',
      )
      .argument('[image]', 'image to run')
      .argument('[dir]', 'bundle directory')
      .option('--name <name>', 'container name')
      .option('-t, --tty', 'ask the runtime for a terminal')
      .option('--remove <dir>', 'unmount and delete the bundle in DIR')
      .action(async (image: string | undefined, dir: string | undefined, flags: BundleFlags, cmd: Command) =>
        (await import('./commands/bundle.js')).bundle(image, dir, flags, cmd),
      ),

  rm: () =>
    new Command('rm')
      .summary('unmount and delete container layers')
      .description('Unmount (every reference) and delete the container layers NAME…; their images stay.')
      .argument('<names...>', 'container names (each is tried; one line per failure)')
      .option('-f, --force', 'accepted for docker habits: rm unmounts and removes mounted containers anyway')
      .action(async (names: string[], flags: { force?: boolean }, cmd: Command) => (await import('./commands/housekeeping.js')).rm(names, flags, cmd)),

  history: () =>
    new Command('history')
      .summary("show an image's history (its steps and their layers)")
      .description("Show IMAGE's steps, newest first, like docker history: the command that made each, when, its layer's size and comment.")
      .argument('<image>', 'image name, short name or ID prefix')
      .option('--no-trunc', "don't truncate the commands and the ID")
      .option('-q, --quiet', 'print only the image ID')
      .action(async (ref: string, flags: { trunc?: boolean; quiet?: boolean }, cmd: Command) => (await import('./commands/history.js')).history(ref, flags, cmd)),

  system: () =>
    new Command('system')
      .summary('store-wide information (system df)')
      .description('Store-wide information. `tsgraph system df` shows what images, containers, layers and blobs take and what is reclaimable.')
      .addCommand(
        new Command('df')
          .summary('show disk usage and what is reclaimable')
          .description(
            'Show what images (their layers and blobs), containers (their own changes), layers and the content store (blobs, partial ' +
              'downloads) take, how many are in use, and what is reclaimable: by `tsgraph gc` now, and by removing images no container uses.',
          )
          // Not -v: that is tsgraph's --version wherever it stands.
          .option('--verbose', 'list each image (shared and unique size) and container')
          .exitOverride()
          .configureOutput(USAGE_ERRORS_TO_MAIN)
          .configureHelp({ showGlobalOptions: true })
          .action(async (flags: { verbose?: boolean }, cmd: Command) => (await import('./commands/system.js')).df(flags, cmd)),
      ),

  rmi: () =>
    new Command('rmi')
      .summary('remove image names from the store')
      .description('Remove images REF…; refused while a container was made from one, unless --force. Run `tsgraph gc` to reclaim space.')
      .argument('<refs...>', 'image names, short names or digest prefixes')
      .option('-f, --force', 'remove even if containers use the image (they keep working); for an ID with several names, remove them all')
      .action(async (refs: string[], flags: { force?: boolean }, cmd: Command) => (await import('./commands/housekeeping.js')).rmi(refs, flags, cmd)),

  gc: () =>
    new Command('gc')
      .summary('remove layers and blobs no image or container references')
      .description(
        'Mark everything images and containers need, delete the rest, and print what was reclaimed. Partial downloads ' +
          'untouched for a day (and not being written) go too, and at once the temp ingests of killed commits.',
      )
      .option('-n, --dry-run', 'only report what would be removed')
      .action(async (flags: { dryRun?: boolean }, cmd: Command) => (await import('./commands/housekeeping.js')).gc(flags, cmd)),

  check: (ctx: CommandContext) =>
    new Command('check')
      .summary('check the store against its records (and repair it)')
      .description(
        'Compare image, layer and container records with the blobs, the driver\'s layers and the mount table: ' +
          'missing or corrupt blobs, half-unpacked layers, orphan layers, containers left half-made by a crash, ' +
          'mount counts that disagree with the kernel, stray mounts, dead temp ingests, stale lock files. ' +
          'Reclaimable space (gc) is reported, not counted as a fault. Exit 0: clean; 1: repaired; 4: damage left.',
      )
      .option('--repair', 'fix what can be fixed (never deletes what an image or container needs)')
      .option('--verify-blobs', 're-hash every blob (reads the whole content store)')
      .action(async (flags: CheckFlags, cmd: Command) => (await import('./commands/check.js')).check(ctx, flags, cmd)),

  unshare: () =>
    new Command('unshare')
      .summary("run a command in the non-root user's namespace (like podman unshare)")
      .description(
        'For a non-root user: run CMD (default: $SHELL) as uid 0 of a new user + mount namespace with the ' +
          "user's /etc/subuid and /etc/subgid ranges mapped, where the files of their root have their real owners, " +
          "tsgraph mount works (the mount lives as long as the namespace) and rootless runc runs. Other verbs enter " +
          'such a namespace by themselves. Give options to CMD after `--`.',
      )
      .argument('[command...]', 'command and arguments (default: $SHELL)')
      // `tsgraph unshare ls -l` as `podman unshare ls -l`: options after the command are the command's.
      .allowUnknownOption()
      .action(async (command: string[]) => (await import('./commands/unshare.js')).unshare(command)),

  save: (ctx: CommandContext) =>
    new Command('save')
      .summary('write images to a docker or OCI tar archive')
      .description(
        'Write IMAGE… (sharing their blobs) as one archive to FILE, or to stdout when it is not a terminal. ' +
          'docker-archive (default) is what `docker load` and `podman load` read; oci-archive is an OCI image layout in a tar ' +
          '(skopeo oci-archive:).',
      )
      .argument('<images...>', 'image names, short names or ID prefixes')
      .option('-o, --output <file>', 'write to FILE (default: stdout, refused on a terminal)')
      .addOption(new Option('--format <format>', 'archive format').choices(['docker-archive', 'oci-archive']).default('docker-archive'))
      .action(async (refs: string[], flags: SaveFlags, cmd: Command) => (await import('./commands/archive.js')).save(ctx, refs, flags, cmd)),

  load: (ctx: CommandContext) =>
    new Command('load')
      .summary('load images from a docker or OCI archive')
      .description(
        'Read a docker-archive or OCI archive from FILE or stdin, check every blob, layer and name in it, and register ' +
          'its images (all or nothing: a bad archive stores nothing). Images without a name get localhost/<file name>:<ID>.',
      )
      .option('-i, --input <file>', 'read FILE (default: stdin)')
      .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)')
      .option('-q, --quiet', 'print only the image names')
      .action(async (flags: LoadFlags, cmd: Command) => (await import('./commands/archive.js')).load(ctx, flags, cmd)),

  export: (ctx: CommandContext) =>
    new Command('export')
      .summary("write a container's merged tree as a tar")
      .description(
        "Write container NAME's whole filesystem (image and changes merged, no whiteouts) as one tar, like docker export, " +
          'to FILE or to stdout when it is not a terminal. Links the container made are exported as links, never followed.',
      )
      .argument('<name>', 'container name')
      .option('-o, --output <file>', 'write to FILE (default: stdout, refused on a terminal)')
      .action(async (name: string, flags: { output?: string }, cmd: Command) => (await import('./commands/archive.js')).exportContainer(ctx, name, flags, cmd)),

  doctor: () =>
    new Command('doctor')
      .summary('check the kernel, filesystem and tools the drivers need')
      .description(
        'Probe the kernel (version, overlay, new mount API, max lowers, metacopy/redirect_dir/index), the root\'s ' +
          'filesystem (type, d_type, whiteout mknod, userxattr, reflink), btrfs, aufs and runc. Prints PASS/FAIL with a ' +
          'remedy for each failure; exits 0 (a failed probe is information, not an error).',
      )
      .action(async (_f: unknown, cmd: Command) => (await import('./commands/doctor.js')).doctor(cmd)),
} satisfies Record<string, (ctx: CommandContext) => Command>;

/** Verbs with their definitions here, in registration order; `bench` is commands/bench.ts's own. */
export const VERBS = [...Object.keys(VERB_DEFINITIONS), 'bench'];
export const VERB_ALIASES: Record<string, string> = { ps: 'containers', unmount: 'umount' };

/**
 * `bench` in the full list (`tsgraph --help`, an unknown verb): commands/bench.ts
 * loads the benchmark code (the whole store) at its top, ~0.15 s, so the list
 * shows this stand-in. start.test.ts checks it renders like the real one.
 */
export function benchStandIn(): Command {
  return new Command('bench').summary('benchmarks (copy-up)');
}

function verbNamed(word: string | undefined): string | undefined {
  if (word === undefined) return undefined;
  if (VERBS.includes(word)) return word;
  return Object.hasOwn(VERB_ALIASES, word) ? VERB_ALIASES[word] : undefined;
}

/**
 * The one verb `args` (argv after the script) runs, when that is certain: the
 * first operand after the global options, or the operand of `help`. Anything
 * else — no verb, an option only the program level can judge (--help, -v, a
 * typo), an unknown word (commander suggests the nearest verb from all names)
 * — is undefined.
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

export interface ProgramOptions {
  version: string;
  /** The verb argv names (requestedVerb): the real bench is loaded only for `bench`. */
  verb?: string;
  /** Runs before any verb's action (not for help, version or usage errors). */
  beforeAction?: () => Promise<void> | void;
}

/**
 * Commander's own error lines ("error: unknown option…") are not printed: main.ts reports the
 * CommanderError it throws as a TSG_USAGE error, in tsgraph's one-line or --json format.
 */
const USAGE_ERRORS_TO_MAIN = { outputError: () => {} };

/** The whole program: every verb defined; bench's actions loaded only when `verb` is bench. */
export async function buildProgram(ctx: CommandContext, opts: ProgramOptions): Promise<Command> {
  const program = new Command('tsgraph')
    .description('OCI image store and union-filesystem graph driver')
    .version(opts.version, '-v, --version')
    .option('--root <dir>', 'store root (default $TSGRAPH_ROOT, else /var/lib/tsgraph; for a non-root user $XDG_DATA_HOME/tsgraph)')
    .option('--driver <name>', 'graph driver: overlay, btrfs, aufs or vfs (default $TSGRAPH_DRIVER, the root\'s own, else overlay where it works, btrfs on btrfs, vfs)')
    .option('--json', 'machine-readable output (errors too)')
    .option('--debug', 'print stack traces on errors')
    .configureHelp({
      showGlobalOptions: true,
      // Verbs sorted by name. Not commander's sortSubcommands: it sorts with localeCompare, whose
      // first call builds an ICU collator, ~10 ms of every `--help`; for lowercase ASCII names
      // code-unit order is the same.
      visibleCommands(cmd: Command): Command[] {
        return Help.prototype.visibleCommands.call(this, cmd).sort((a, b) => (a.name() < b.name() ? -1 : a.name() > b.name() ? 1 : 0));
      },
    })
    .exitOverride()
    .configureOutput(USAGE_ERRORS_TO_MAIN);
  const verbs = Object.values(VERB_DEFINITIONS).map((define) => define(ctx));
  verbs.push(opts.verb === 'bench' ? (await import('./commands/bench.js')).benchCommand() : benchStandIn());
  for (const cmd of verbs) {
    cmd.exitOverride().configureOutput(USAGE_ERRORS_TO_MAIN).configureHelp({ showGlobalOptions: true });
    program.addCommand(cmd);
  }
  // Non-root: the rootless gate first (refuses early, or runs the verb in a user namespace);
  // root loads nothing more.
  program.hook('preAction', async (_program: Command, action: Command) => {
    if (process.geteuid?.() === 0) return;
    const { rootlessGate } = await import('../rootless/gate.js');
    const unshare = action.name() === 'unshare' ? (await import('./commands/unshare.js')).unshareCommand(action.args) : undefined;
    await rootlessGate(action.name(), program.opts(), unshare);
  });
  if (opts.beforeAction) program.hook('preAction', opts.beforeAction);
  return program;
}
