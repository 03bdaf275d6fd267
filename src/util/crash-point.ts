/**
 * Test-only hooks at named steps of multi-step operations, so crash and race
 * tests are deterministic (no sleeps). Every hook is a no-op unless its
 * environment variable names it; production runs never set them.
 *
 *   TSGRAPH_CRASH_AT=<step>     crashPoint(step) SIGKILLs this process, as a
 *                               power cut or `kill -9` would at that step.
 *   TSGRAPH_PAUSE_AT=<s1>,<s2>  pausePoint(step) writes `<HOOK_DIR>/<step>.reached`
 *   TSGRAPH_HOOK_DIR=<dir>      and blocks until `<HOOK_DIR>/<step>.go` exists
 *                               (bounded: TSG_INTERNAL after 120 s).
 *   TSGRAPH_NOTIFY_AT=<s1>,...  notifyPoint(step) writes `<HOOK_DIR>/<step>.reached`
 *                               and goes on (e.g. "now waiting on lock X").
 *
 * Step names are `<verb or part>:<step>` (`mount:after-claim`,
 * `lock-wait:gc`); in file names every character outside [A-Za-z0-9._-]
 * becomes `_`. test/helpers/hooks.ts drives them from tests.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { TsgraphError } from '../errors.js';

const PAUSE_LIMIT_MS = 120_000;

function named(variable: string, step: string): boolean {
  const v = process.env[variable];
  return !!v && v.split(',').includes(step);
}

/** The file name a step's markers use. */
export function hookFileName(step: string): string {
  return step.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** SIGKILLs this process when `TSGRAPH_CRASH_AT` names `step`. */
export function crashPoint(step: string): void {
  if (named('TSGRAPH_CRASH_AT', step)) process.kill(process.pid, 'SIGKILL');
  pauseIfNamed(step);
}

function reached(step: string): string | undefined {
  const dir = process.env.TSGRAPH_HOOK_DIR;
  if (!dir) return undefined;
  const base = join(dir, hookFileName(step));
  fs.writeFileSync(`${base}.reached`, `${process.pid}\n`);
  return base;
}

/** Signals that `step` was reached when `TSGRAPH_NOTIFY_AT` names it. */
export function notifyPoint(step: string): void {
  if (named('TSGRAPH_NOTIFY_AT', step)) reached(step);
}

/**
 * Blocks (synchronously: the step's locks and fds stay exactly as they are)
 * until the test lets `step` go, when `TSGRAPH_PAUSE_AT` names it.
 */
export function pausePoint(step: string): void {
  // Any step is a crash point too: one name list for the crash matrix.
  if (named('TSGRAPH_CRASH_AT', step)) process.kill(process.pid, 'SIGKILL');
  pauseIfNamed(step);
}

function pauseIfNamed(step: string): void {
  if (!named('TSGRAPH_PAUSE_AT', step)) return;
  const base = reached(step);
  if (!base) return;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + PAUSE_LIMIT_MS;
  while (!fs.existsSync(`${base}.go`)) {
    if (Date.now() > deadline) throw new TsgraphError('TSG_INTERNAL', `test pause at ${step}: no go after ${PAUSE_LIMIT_MS} ms`);
    Atomics.wait(cell, 0, 0, 10);
  }
}
