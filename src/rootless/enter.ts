/**
 * Runs a command inside a new user + mount namespace, the podman way.
 *
 * Node cannot unshare itself (a user namespace needs a single-threaded
 * caller), so util-linux `unshare --user --mount` makes the namespaces and
 * execs a tiny sh that waits. Meanwhile this process maps the ids through the
 * setuid helpers — `newuidmap PID 0 UID 1 1 SUBUID N …` (and newgidmap) —
 * and then lets the sh go on: it execs the command, which now starts as uid 0
 * of the namespace with its full capabilities there (the exec after the
 * mapping is what grants them). Ids in the namespace: 0 = the user, 1..N =
 * their /etc/subuid range. In the single-id mode, `unshare --map-root-user`
 * maps the user's own id alone (no helper needed).
 *
 * The mount namespace is private: mounts made in it (overlay with
 * userxattr) are seen by it and its children only and vanish with it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { UnsupportedError } from '../errors.js';
import type { RootlessPlan } from './requirements.js';
import { idMapArgs } from './subid.js';

/** How long the namespace's sh and the id helpers get to answer. */
const STEP_TIMEOUT_MS = 15_000;

/*
 * fd 4: "ready" once the namespaces exist; fd 3: "go" once the ids are
 * mapped (anything else, or EOF: give up). Both are closed before the exec,
 * so the command inherits neither.
 */
const WAIT_SCRIPT = 'echo ready >&4; exec 4>&-; IFS= read -r ok <&3 || exit 125; exec 3<&-; [ "$ok" = go ] || exit 125; exec "$@"';

export interface EnterOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim())?.trim() ?? '';
}

/** Runs newuidmap/newgidmap for `pid`; throws TSG_ROOTLESS naming the helper and what it said. */
function mapIds(plan: RootlessPlan, pid: number): void {
  const steps: Array<[string, string[]]> = [
    [plan.newuidmap!, [String(pid), ...idMapArgs(plan.uid, plan.uidRanges)]],
    [plan.newgidmap!, [String(pid), ...idMapArgs(plan.gid, plan.gidRanges)]],
  ];
  for (const [helper, args] of steps) {
    const r = spawnSync(helper, args, { encoding: 'utf8', timeout: STEP_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) {
      const why = firstLine(r.stderr ?? '') || (r.error ? r.error.message : `exit ${r.status ?? r.signal}`);
      throw new UnsupportedError('TSG_ROOTLESS', `rootless tsgraph could not map ids: ${helper} ${args.join(' ')} failed: ${why}`, {
        data: { helper, args, stderr: r.stderr },
      });
    }
  }
}

function readLine(stream: Readable, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = '';
    const done = (v: string | undefined) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onEnd);
      resolve(v);
    };
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl));
    };
    const onEnd = () => done(undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onEnd);
  });
}

/** Exit status as a shell reports it. */
function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return 128 + (signal ? (signals[signal] ?? 1) : 1);
}

/**
 * Starts `argv` in a new user + mount namespace with the plan's ids mapped
 * and resolves with its exit status. Throws TSG_ROOTLESS when the namespace
 * or the mapping cannot be made (the command has not run then).
 */
export async function runInUserNamespace(plan: RootlessPlan, argv: string[], options: EnterOptions): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new UnsupportedError('TSG_ROOTLESS', 'nothing to run in the user namespace');
  let child: ChildProcess;
  if (plan.mode === 'single') {
    child = spawn(plan.unshare, ['--user', '--map-root-user', '--mount', '--propagation', 'private', '--', cmd, ...args], {
      stdio: 'inherit',
      env: options.env,
      cwd: options.cwd,
    });
  } else {
    child = spawn(plan.unshare, ['--user', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', WAIT_SCRIPT, 'tsgraph-userns', cmd, ...args], {
      stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe'],
      env: options.env,
      cwd: options.cwd,
    });
  }
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (err) => reject(new UnsupportedError('TSG_ROOTLESS', `rootless tsgraph could not start ${plan.unshare}: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => resolve(statusOf(code, signal)));
  });
  exited.catch(() => {}); // awaited below; no unhandled rejection while the mapping runs
  // SIGINT comes from the terminal to the whole process group (the command
  // gets its own); SIGTERM/SIGHUP sent to this pid are passed on. This
  // process does nothing but wait, so it takes the signals over from main's
  // handlers (which would exit before the command has wound down) — now,
  // before the command may start: a signal sent as soon as it runs must not
  // find main's handlers still in place.
  const forward = (sig: NodeJS.Signals) => () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]) process.removeAllListeners(sig);
  process.on('SIGINT', () => {});
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGHUP', forward('SIGHUP'));
  if (plan.mode === 'subid') {
    const go = child.stdio[3] as Writable | null;
    const ready = child.stdio[4] as Readable | null;
    if (!go || !ready) {
      await exited; // not started (spawn error): that rejection says why
      throw new UnsupportedError('TSG_ROOTLESS', `rootless tsgraph could not start ${plan.unshare}`);
    }
    go.on('error', () => {}); // the sh may be gone (EPIPE): its exit status tells
    const line = await readLine(ready, STEP_TIMEOUT_MS);
    if (line !== 'ready') {
      go.destroy();
      child.kill('SIGKILL');
      const status = await exited.catch(() => 125);
      throw new UnsupportedError('TSG_ROOTLESS', `rootless tsgraph could not make a user namespace (${plan.unshare} --user --mount exited ${status}; are unprivileged user namespaces allowed?)`);
    }
    try {
      mapIds(plan, child.pid!);
    } catch (err) {
      go.destroy();
      child.kill('SIGKILL');
      await exited.catch(() => {});
      throw err;
    }
    go.end('go\n');
    ready.destroy();
  }
  return exited;
}
