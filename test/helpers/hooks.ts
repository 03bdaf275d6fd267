/**
 * Drives the test-only hooks of src/util/crash-point.ts from tests: crash a
 * CLI process at a named step, pause it there until the test lets it go, or
 * wait until it reports a step (e.g. "now waiting on lock X"). Every wait is
 * bounded and fails early, with the child's stderr, if the child exits first.
 */
import { type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hookFileName } from '../../src/util/crash-point.js';
import { type CliResult, spawnCli } from './cli.js';

export interface HookSteps {
  pause?: string[];
  notify?: string[];
  crash?: string;
}

/** Environment variables that arm the given steps, with markers in `dir`. */
export function hookEnv(dir: string, steps: HookSteps): Record<string, string> {
  const env: Record<string, string> = { TSGRAPH_HOOK_DIR: dir };
  if (steps.pause?.length) env.TSGRAPH_PAUSE_AT = steps.pause.join(',');
  if (steps.notify?.length) env.TSGRAPH_NOTIFY_AT = steps.notify.join(',');
  if (steps.crash) env.TSGRAPH_CRASH_AT = steps.crash;
  return env;
}

/** A CLI process running in the background. */
export interface RunningCli {
  child: ChildProcess;
  /** Resolves when it exits. */
  done: Promise<CliResult>;
  exited(): boolean;
  stderr(): string;
}

export function startCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 120_000): RunningCli {
  const child = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, done, exited: () => exited, stderr: () => stderr };
}

/** Waits until `step` was reached in `dir` (by `proc`, which must not exit first). */
export async function waitReached(dir: string, step: string, proc: RunningCli, timeoutMs = 60_000): Promise<void> {
  const marker = join(dir, `${hookFileName(step)}.reached`);
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(marker)) {
    if (proc.exited()) {
      const r = await proc.done;
      throw new Error(`process exited (code ${r.code}, signal ${r.signal}) before reaching ${step}\nstderr: ${r.stderr}`);
    }
    if (Date.now() > deadline) throw new Error(`${step} not reached within ${timeoutMs} ms\nstderr: ${proc.stderr()}`);
    await sleep(10);
  }
}

/** Lets a paused step go on. */
export function release(dir: string, step: string): void {
  fs.writeFileSync(join(dir, `${hookFileName(step)}.go`), '');
}
