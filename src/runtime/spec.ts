/**
 * An OCI runtime spec (config.json) for an image, with the defaults `runc
 * spec` writes (namespaces, mounts, capabilities, masked paths) and the
 * process taken from the image config: Entrypoint + Cmd, Env, WorkingDir,
 * User (names resolved in the rootfs's /etc/passwd and /etc/group).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { ImageConfig } from '../oci/schemas.js';

const DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function readTable(rootfs: string, file: string): string[][] {
  try {
    // The rootfs is an image's: a symlinked `etc` or `etc/passwd` could point at
    // the host's files. Every component must be a real dir / file, none followed.
    let path = rootfs;
    for (const part of file.split('/')) {
      path = join(path, part);
      if (fs.lstatSync(path).isSymbolicLink()) return [];
    }
    if (fs.statSync(path).size > 1 << 20) return [];
    return fs.readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/** `user`, `uid`, `user:group`, `uid:gid` → numeric ids, looked up in the rootfs. */
export function resolveUser(rootfs: string, user: string | undefined): { uid: number; gid: number; additionalGids?: number[] } {
  if (!user) return { uid: 0, gid: 0 };
  const [u, g] = user.split(':') as [string, string | undefined];
  const passwd = readTable(rootfs, 'etc/passwd');
  const group = readTable(rootfs, 'etc/group');
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const row = passwd.find((r) => r[2] === u);
    gid = row ? Number(row[3]) : undefined;
  } else {
    const row = passwd.find((r) => r[0] === u);
    if (!row) throw new UsageError('TSG_USAGE', `user ${u} is not in the image's /etc/passwd`);
    uid = Number(row[2]);
    gid = Number(row[3]);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const row = group.find((r) => r[0] === g);
      if (!row) throw new UsageError('TSG_USAGE', `group ${g} is not in the image's /etc/group`);
      gid = Number(row[2]);
    }
  }
  return { uid, gid: gid ?? 0 };
}

export interface SpecOptions {
  rootPath: string;
  hostname?: string | undefined;
  terminal?: boolean | undefined;
  /** Overrides Entrypoint + Cmd. */
  args?: string[] | undefined;
}

export function runtimeSpec(config: ImageConfig, options: SpecOptions): Record<string, unknown> {
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
      user: resolveUser(options.rootPath, c.User),
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
