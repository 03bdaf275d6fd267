/**
 * Shared bits of `npm run bench`: running commands (every child tracked so
 * Ctrl-C can end it), timing, medians, progress lines, scratch filesystems
 * (tmpfs and fresh loop ext4) and one cleanup stack that runs on success,
 * failure and signals.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';

const started = Date.now();

export function log(msg: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[bench ${t}s] ${msg}\n`);
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// ---- cleanup stack ------------------------------------------------------

type Undo = { what: string; fn: () => void | Promise<void> };
const undo: Undo[] = [];
const children = new Set<ChildProcess>();

/** Registers `fn` to run at exit (LIFO); returns a function that runs it now and unregisters it. */
export function onCleanup(what: string, fn: () => void | Promise<void>): () => Promise<void> {
  const u: Undo = { what, fn };
  undo.push(u);
  return async () => {
    const i = undo.indexOf(u);
    if (i < 0) return;
    undo.splice(i, 1);
    await u.fn();
  };
}

export async function cleanupAll(): Promise<void> {
  for (const c of children) c.kill('SIGKILL');
  // Bounded: each step runs once, whatever it throws.
  while (undo.length > 0) {
    const u = undo.pop()!;
    try {
      await u.fn();
    } catch (err) {
      log(`cleanup of ${u.what} failed: ${(err as Error).message}`);
    }
  }
}

let signalled = false;
/** True after Ctrl-C / SIGTERM: loops stop starting new measurements. */
export const stopping = (): boolean => signalled;
export function installSignalHandlers(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (signalled) return;
      signalled = true;
      log(`${sig}: cleaning up`);
      void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

// ---- commands -------------------------------------------------------------

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  cwd?: string;
  /** Throw on a non-zero exit (default true). */
  check?: boolean;
}

/** Runs argv, timing it from spawn to exit; output captured (capped). */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  // After Ctrl-C nothing new starts: a teardown racing the cleanup would talk to a daemon already killed.
  if (signalled) return Promise.reject(new Error(`not starting ${argv[0]}: the bench is stopping`));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      if (stdout.length < 1 << 20) stdout += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 1 << 20) stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      children.delete(child);
      const r = { code: code ?? (signal ? 128 : 1), stdout, stderr, ms };
      if ((opts.check ?? true) && r.code !== 0) {
        reject(new Error(`${argv.join(' ')} exited ${r.code}${signal ? ` (${signal})` : ''}: ${stderr.slice(-1500) || stdout.slice(-500)}`));
      } else resolve(r);
    });
  });
}

/** `bash -c script` with pipefail. */
export function sh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run(['bash', '-c', `set -eo pipefail\n${script}`], opts);
}

/** Starts a long-running child (a daemon) that cleanupAll kills. */
export function daemon(argv: string[], logPath: string): ChildProcess {
  if (signalled) throw new Error(`not starting ${argv[0]}: the bench is stopping`);
  const out = fs.openSync(logPath, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  children.add(child);
  child.on('close', () => children.delete(child));
  return child;
}

export function have(bin: string): boolean {
  try {
    execFileSync('bash', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// ---- scratch filesystems ---------------------------------------------------

/** Mount points below `dir`, deepest first (from /proc/self/mountinfo; octal escapes decoded). */
export function mountsBelow(dir: string): string[] {
  const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const pts: string[] = [];
  for (const l of lines) {
    const mp = l.split(' ')[4];
    if (!mp) continue;
    const p = mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p.startsWith(`${dir}/`)) pts.push(p);
  }
  return pts.sort((a, b) => b.length - a.length);
}

export function unmountBelow(dir: string): void {
  for (const p of mountsBelow(dir)) {
    try {
      execFileSync('umount', ['-l', p], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

export interface Scratch {
  dir: string;
  kind: 'tmpfs' | 'ext4';
  /** Unmounts everything below and the fs itself, detaches the loop device, removes the dirs. */
  dispose(): Promise<void>;
}

/** A fresh tmpfs under `parent`. */
export function makeTmpfs(parent: string, size: string): Scratch {
  const dir = fs.mkdtempSync(join(parent, 'tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tsgraph-bench', dir]);
  const dispose = onCleanup(`tmpfs ${dir}`, () => {
    unmountBelow(dir);
    execFileSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, kind: 'tmpfs', dispose };
}

/**
 * A fresh ext4 on a new loop device. The backing file lives in `backingDir`
 * (a tmpfs of the bench's own: no disk latency from other processes, and
 * never a filesystem that just had a big delete).
 */
export function makeLoopExt4(parent: string, backingDir: string, size: string): Scratch {
  const dir = fs.mkdtempSync(join(parent, 'ext4-'));
  const image = join(backingDir, `${dir.split('/').pop()}.img`);
  execFileSync('truncate', ['-s', size, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
  const dev = execFileSync('losetup', ['--find', '--show', image]).toString().trim();
  const dispose = onCleanup(`loop ext4 ${dir}`, () => {
    unmountBelow(dir);
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
    } catch {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      } catch {
        /* never mounted */
      }
    }
    try {
      execFileSync('losetup', ['-d', dev], { stdio: 'ignore' });
    } catch {
      /* autocleared */
    }
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(image, { force: true });
  });
  execFileSync('mount', [dev, dir]);
  return { dir, kind: 'ext4', dispose };
}

export function dirSize(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
}
