/**
 * Inter-process locks on files under `<root>/locks/`, taken with flock(2)
 * through the native addon. The kernel releases them when the holder dies,
 * so a `kill -9` never leaves a store locked. Waiting is a bounded poll of
 * LOCK_NB (a blocking flock would freeze Node's event loop).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BusyError, throwIfAborted } from '../errors.js';
import { native } from '../native.js';

export interface LockOptions {
  /** Shared (readers) or exclusive (writers). Default exclusive. */
  shared?: boolean;
  /** How long to wait for a holder to let go, in ms. Default 60 s; 0 = try once. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A held lock; release() is idempotent. */
export class FileLock {
  #fd: number | undefined;
  constructor(
    readonly path: string,
    fd: number,
  ) {
    this.#fd = fd;
  }
  release(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    // Closing the fd drops the flock; no explicit LOCK_UN needed.
    fs.closeSync(fd);
  }
}

function tryLock(fd: number, shared: boolean): boolean {
  const n = native();
  const { LOCK_SH, LOCK_EX, LOCK_NB } = n.lockConstants;
  return n.flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB);
}

/** Takes the lock named `name` in `lockDir`, waiting up to `timeoutMs`. */
export async function acquireLock(lockDir: string, name: string, options: LockOptions = {}): Promise<FileLock> {
  const path = join(lockDir, `${name}.lock`);
  fs.mkdirSync(lockDir, { recursive: true });
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  try {
    for (;;) {
      if (tryLock(fd, options.shared ?? false)) return new FileLock(path, fd);
      throwIfAborted(options.signal);
      if (Date.now() >= deadline) {
        throw new BusyError('TSG_LOCKED', `${path} is held by another tsgraph process (waited ${timeoutMs} ms)`, {
          data: { path },
        });
      }
      await sleep(delay, undefined, { signal: options.signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 200);
    }
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}
