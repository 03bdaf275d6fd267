/**
 * A real non-root user for rootless tests: made with useradd (a system user,
 * so no subordinate range is handed out behind the test's back), given a
 * /etc/subuid and /etc/subgid range when asked, and removed (ranges first)
 * in cleanup. Commands run as that user through spawn's uid/gid (libuv drops
 * the supplementary groups), with a minimal environment: HOME, USER, PATH.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CLI_ARGV, REPO_ROOT } from './cli.js';
import { FIXED_MTIME, makeImage, makeLayer } from './image-builder.js';

export const SUBID_COUNT = 65536;

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** First host id of the user's subordinate range (undefined: none). */
  subStart: number | undefined;
  env(extra?: Record<string, string>): Record<string, string>;
  /** Runs the tsgraph CLI as the user. */
  cli(args: string[], extra?: Record<string, string>, timeoutMs?: number): Promise<RunResult>;
  /** Starts the tsgraph CLI as the user (stdout/stderr piped), for tests that signal it. */
  start(args: string[], extra?: Record<string, string>): ChildProcess;
  /** Runs `sh -c script` as the user. */
  sh(script: string, extra?: Record<string, string>, timeoutMs?: number): Promise<RunResult>;
  remove(): void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function must(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.error?.message ?? ''}`);
  return r.stdout;
}

/** newuidmap/newgidmap (Debian package uidmap) installed the way scripts/test.sh installs packages. */
export function ensureUidmap(): void {
  if (fs.existsSync('/usr/bin/newuidmap') && fs.existsSync('/usr/bin/newgidmap')) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'uidmap'], { encoding: 'utf8', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8', env });
    r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'uidmap'], { encoding: 'utf8', env });
  }
  if (r.status !== 0) throw new Error(`apt-get install uidmap failed: ${r.stderr}`);
}

function run(cmd: string, args: string[], user: { uid: number; gid: number }, env: Record<string, string>, timeoutMs: number): Promise<RunResult> {
  const child = spawn(cmd, args, { cwd: REPO_ROOT, uid: user.uid, gid: user.gid, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
}

/**
 * Makes user `tsgrl<hex>` with home `<parent>/<name>` (0700, theirs) and,
 * when `subStart` is given, the range subStart..subStart+65535 for uids and gids.
 */
export function makeUser(parent: string, subStart?: number): TestUser {
  const name = `tsgrl${randomBytes(4).toString('hex')}`;
  const home = join(parent, name);
  must('useradd', ['--system', '--no-create-home', '--home-dir', home, '--shell', '/bin/sh', '--user-group', name]);
  const uid = Number(must('id', ['-u', name]).trim());
  const gid = Number(must('id', ['-g', name]).trim());
  const range = subStart === undefined ? undefined : `${subStart}-${subStart + SUBID_COUNT - 1}`;
  try {
    fs.mkdirSync(home, { mode: 0o700 });
    fs.chownSync(home, uid, gid);
    if (range) must('usermod', ['--add-subuids', range, '--add-subgids', range, name]);
  } catch (err) {
    spawnSync('userdel', [name]);
    throw err;
  }
  const env = (extra: Record<string, string> = {}) => ({ HOME: home, USER: name, LOGNAME: name, PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', ...extra });
  return {
    name,
    uid,
    gid,
    home,
    subStart,
    env,
    cli: (args, extra, timeoutMs = 180_000) => run(process.execPath, [...CLI_ARGV, ...args], { uid, gid }, env(extra), timeoutMs),
    start: (args, extra) =>
      spawn(process.execPath, [...CLI_ARGV, ...args], { cwd: REPO_ROOT, uid, gid, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] }),
    sh: (script, extra, timeoutMs = 180_000) => run('/bin/sh', ['-c', script], { uid, gid }, env(extra), timeoutMs),
    remove() {
      if (range) spawnSync('usermod', ['--del-subuids', range, '--del-subgids', range, name]);
      spawnSync('userdel', [name]);
      // The store holds files of the user's subordinate ids: only root removes them.
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The lines of /etc/subuid or /etc/subgid that name `user`. */
export function subIdLines(file: string, user: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith(`${user}:`));
  } catch {
    return [];
  }
}

/** The tsgraph command line for a shell script run as the user (source through tsx, or dist: helpers/cli.ts). */
export const TSGRAPH = [process.execPath, ...CLI_ARGV].join(' ');

const busybox = fs.readFileSync('/bin/busybox');
const applets = ['sh', 'id', 'ls', 'cat', 'stat', 'echo'];

/**
 * The rootless tests' image: busybox applets, files of uid 1000 and 33, an
 * opaque dir and a whiteout in the second layer.
 */
export async function testImage() {
  const base = await makeLayer([
    { path: 'bin', type: 'directory' },
    { path: 'bin/busybox', content: busybox, mode: 0o755 },
    ...applets.map((a) => ({ path: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
    ...['dev', 'proc', 'sys', 'tmp'].map((d) => ({ path: d, type: 'directory' as const })),
    { path: 'etc', type: 'directory' },
    { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nwww:x:33:33::/data:/bin/sh\n' },
    { path: 'etc/group', content: 'root:x:0:\napp:x:1000:\nwww:x:33:\n' },
    { path: 'home', type: 'directory' },
    { path: 'home/app', type: 'directory', uid: 1000, gid: 1000, mode: 0o755 },
    { path: 'home/app/notes.txt', content: 'notes\n', uid: 1000, gid: 1000, mode: 0o640 },
    { path: 'data', type: 'directory', uid: 33, gid: 33, mode: 0o700 },
    { path: 'opq', type: 'directory' },
    { path: 'opq/a.txt', content: 'a' },
    { path: 'opq/b.txt', content: 'b' },
    { path: 'keep', type: 'directory' },
    { path: 'keep/gone.txt', content: 'gone' },
  ]);
  const top = await makeLayer([
    { path: 'opq', type: 'directory' },
    { path: 'opq/.wh..wh..opq', content: '' },
    { path: 'opq/c.txt', content: 'c' },
    { path: 'keep', type: 'directory' },
    { path: 'keep/.wh.gone.txt', content: '' },
    { path: 'home/app/new.txt', content: 'new\n', uid: 1000, gid: 1000, mtime: FIXED_MTIME },
  ]);
  return makeImage({ layers: [base, top], cmd: ['/bin/sh'] });
}
