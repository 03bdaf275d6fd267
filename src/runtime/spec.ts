/**
 * An OCI runtime spec (config.json) for an image, with the defaults `runc
 * spec` writes (namespaces, mounts, capabilities, masked paths) and the
 * process taken from the image config: Entrypoint + Cmd, Env, WorkingDir,
 * User (names resolved in the rootfs's /etc/passwd and /etc/group).
 */
import { UnsafeError, UsageError } from '../errors.js';
import { SafeNode } from '../util/safe-dir.js';
import type { ImageConfig } from '../oci/schemas.js';

const DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** /etc/passwd and /etc/group bigger than this are refused: real ones are a few KiB. */
export const MAX_TABLE_BYTES = 1 << 20;

/**
 * Rows of the image's `file` (e.g. `etc/passwd`), or [] when it is absent.
 * The rootfs is the image's: a symlinked `etc` or `etc/passwd` could point at
 * the host's files, a FIFO would block forever, /dev/zero would never end. So
 * each component is opened relative to its parent without following
 * (util/safe-dir.ts); a symlink counts as absent; anything but a regular file
 * of at most MAX_TABLE_BYTES is refused with TSG_UNSAFE_PATH.
 */
function readTable(rootfs: string, file: string): string[][] {
  let node = SafeNode.openRoot(rootfs);
  try {
    for (const part of file.split('/')) {
      if (!node.stats.isDirectory()) return [];
      const next = node.open(part);
      node.close();
      if (!next) return [];
      node = next;
    }
    if (node.stats.isSymbolicLink()) return [];
    if (!node.stats.isFile()) throw new UnsafeError('TSG_UNSAFE_PATH', `the image's /${file} is not a regular file; refusing to read it`);
    if (node.stats.size > MAX_TABLE_BYTES) throw new UnsafeError('TSG_UNSAFE_PATH', `the image's /${file} is bigger than ${MAX_TABLE_BYTES} bytes; refusing to read it`);
    return node
      .readAll(MAX_TABLE_BYTES)
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':'));
  } finally {
    node.close();
  }
}

/** A uid/gid field of the image's tables: a decimal integer that fits in 32 bits, or refused. */
function parseId(value: string | undefined, what: string): number {
  const n = value !== undefined && /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  if (!(n <= 0xffffffff)) throw new UnsafeError('TSG_UNSAFE_PATH', `the image's ${what} is not a valid id: ${JSON.stringify(value ?? '')}`);
  return n;
}

/** The process's numeric user of an OCI runtime spec. */
export interface RuntimeUser {
  /** User id in the container. */
  uid: number;
  /** Group id in the container. */
  gid: number;
  /** Supplementary groups. */
  additionalGids?: number[];
}

/**
 * The image config's `User` (`user`, `uid`, `user:group`, `uid:gid`) as
 * numeric ids, names looked up in the rootfs's /etc/passwd and /etc/group.
 * Those files are the image's: read without following a symlink, regular
 * files of at most {@link MAX_TABLE_BYTES} only (else TSG_UNSAFE_PATH). An
 * unknown name is TSG_USAGE; no user is root (0:0).
 */
export function resolveUser(rootfs: string, user: string | undefined): RuntimeUser {
  if (!user) return { uid: 0, gid: 0 };
  const [u, g] = user.split(':') as [string, string | undefined];
  const passwd = readTable(rootfs, 'etc/passwd');
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = parseId(u, 'user');
    const row = passwd.find((r) => r[2] === u);
    gid = row ? parseId(row[3], `gid of uid ${u} in /etc/passwd`) : undefined;
  } else {
    const row = passwd.find((r) => r[0] === u);
    if (!row) throw new UsageError('TSG_USAGE', `user ${u} is not in the image's /etc/passwd`);
    uid = parseId(row[2], `uid of ${u} in /etc/passwd`);
    gid = parseId(row[3], `gid of ${u} in /etc/passwd`);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = parseId(g, 'group');
    else {
      const row = readTable(rootfs, 'etc/group').find((r) => r[0] === g);
      if (!row) throw new UsageError('TSG_USAGE', `group ${g} is not in the image's /etc/group`);
      gid = parseId(row[2], `gid of group ${g} in /etc/group`);
    }
  }
  return { uid, gid: gid ?? 0 };
}

/** Options of {@link runtimeSpec}. */
export interface SpecOptions {
  /** The container's root filesystem (a tsgraph mount): `root.path`, and where the user is looked up. */
  rootPath: string;
  /** `hostname` (default `tsgraph`). */
  hostname?: string | undefined;
  /** `process.terminal` (adds TERM=xterm to the environment when the image sets none). */
  terminal?: boolean | undefined;
  /** Overrides Entrypoint + Cmd. */
  args?: string[] | undefined;
  /**
   * The process's user, as is: no lookup of the image's `User` in
   * `rootPath` (for a rootfs that is not mounted here: a runtime mounting
   * the container itself in its own mount namespace).
   */
  user?: RuntimeUser | undefined;
}

/** A mount of an OCI runtime spec. */
export interface RuntimeMount {
  /** Where in the container. */
  destination: string;
  /** Filesystem type (`proc`, `tmpfs`, `bind`, …). */
  type: string;
  /** What is mounted. */
  source: string;
  /** mount(8)-style options. */
  options?: string[];
}

/** A uid/gid mapping of an OCI runtime spec (`linux.uidMappings`). */
export interface RuntimeIdMapping {
  /** First id in the container. */
  containerID: number;
  /** First id on the host it maps to. */
  hostID: number;
  /** How many ids. */
  size: number;
}

/**
 * The OCI runtime spec (config.json) tsgraph writes: the fields it sets,
 * typed; a runtime may change any of them (or add others) before use.
 */
export interface RuntimeSpec {
  /** The runtime spec version written (1.0.2). */
  ociVersion: string;
  /** The container's process: argv, env, cwd, user, capabilities, rlimits. */
  process: {
    terminal: boolean;
    user: RuntimeUser;
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted' | 'ambient', string[]>;
    rlimits: Array<{ type: string; hard: number; soft: number }>;
    noNewPrivileges: boolean;
    [key: string]: unknown;
  };
  /** The root filesystem: its path (absolute, or relative to the bundle) and whether read-only. */
  root: { path: string; readonly: boolean };
  /** The container's hostname. */
  hostname: string;
  /** Mounts inside the container (proc, dev, sys, …), like `runc spec`. */
  mounts: RuntimeMount[];
  /** Linux specifics: namespaces, id maps, masked and read-only paths, device rules. */
  linux: {
    resources?: Record<string, unknown>;
    namespaces: Array<{ type: string; path?: string }>;
    uidMappings?: RuntimeIdMapping[];
    gidMappings?: RuntimeIdMapping[];
    maskedPaths: string[];
    readonlyPaths: string[];
    [key: string]: unknown;
  };
  /** Any other field of the OCI runtime spec. */
  [key: string]: unknown;
}

/**
 * The runtime spec for a container of an image with this `config`: the
 * defaults `runc spec` writes (namespaces, mounts, capabilities, masked
 * paths) and the process from the image (Entrypoint + Cmd or `args`, Env with
 * a PATH, WorkingDir, User resolved in `rootPath`). TSG_USAGE when there is
 * no command at all.
 */
export function runtimeSpec(config: ImageConfig, options: SpecOptions): RuntimeSpec {
  const c = config.config ?? {};
  const args = options.args ?? [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  if (args.length === 0) throw new UsageError('TSG_USAGE', 'the image has neither Entrypoint nor Cmd; give a command');
  const env = c.Env && c.Env.length ? [...c.Env] : [DEFAULT_PATH];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH);
  if (options.terminal && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: options.terminal ?? false,
      user: options.user ?? resolveUser(options.rootPath, c.User),
      args,
      env,
      cwd: c.WorkingDir || '/',
      capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS, ambient: DEFAULT_CAPS },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: options.rootPath, readonly: false },
    hostname: options.hostname ?? 'tsgraph',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
