/**
 * Inter-process locks on files under `<root>/locks/`, taken with flock(2)
 * through the native addon. The kernel releases them when the holder dies,
 * so a `kill -9` never leaves a store locked. Waiting is a bounded poll of
 * LOCK_NB (a blocking flock would freeze Node's event loop).
 *
 * flock is not fair: a stream of shared holders that overlap keeps an
 * exclusive waiter out forever. acquireFairLock() adds a second
 * `<name>.intent` lock that an exclusive waiter holds while it waits, and that
 * every new shared holder passes through (briefly) before taking its shared
 * lock, so new readers queue behind a waiting writer.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BusyError, throwIfAborted } from '../errors.js';
import { native } from '../native.js';
import { notifyPoint } from '../util/crash-point.js';

export interface LockOptions {
  /** Shared (readers) or exclusive (writers). Default exclusive. */
  shared?: boolean;
  /** How long to wait for a holder to let go, in ms. Default 60 s; 0 = try once. */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** Called once, when the lock is busy and the wait begins. */
  onWait?: ((path: string) => void) | undefined;
  /** What the lock protects, for the TSG_LOCKED message (`the gc lock of /root`). */
  what?: string | undefined;
  /** The wait to report in TSG_LOCKED when this is the last step of a longer one (acquireFairLock). */
  reportedTimeoutMs?: number | undefined;
}

/** A held lock; release() is idempotent. */
export class FileLock {
  #fd: number | undefined;
  constructor(
    readonly path: string,
    fd: number,
    /** A lock released together with this one (a writer's intent lock). */
    private readonly also?: FileLock,
  ) {
    this.#fd = fd;
  }
  release(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    // Closing the fd drops the flock; no explicit LOCK_UN needed.
    fs.closeSync(fd);
    this.also?.release();
  }

  /** Hands the fd over to a new lock that also releases `other`. */
  withAlso(other: FileLock): FileLock {
    const fd = this.#fd;
    if (fd === undefined) throw new Error('lock already released');
    this.#fd = undefined;
    return new FileLock(this.path, fd, other);
  }
}

function formatWait(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

function tryLock(fd: number, shared: boolean): boolean {
  const n = native();
  const { LOCK_SH, LOCK_EX, LOCK_NB } = n.lockConstants;
  return n.flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB);
}

/** Takes the lock named `name` in `lockDir`, waiting up to `timeoutMs`. */
export async function acquireLock(lockDir: string, name: string, options: LockOptions = {}): Promise<FileLock> {
  const path = join(lockDir, `${name}.lock`);
  fs.mkdirSync(lockDir, { recursive: true, mode: 0o700 });
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  let waiting = false;
  try {
    for (;;) {
      if (tryLock(fd, options.shared ?? false)) return new FileLock(path, fd);
      throwIfAborted(options.signal);
      if (Date.now() >= deadline) {
        const what = options.what ?? path;
        throw new BusyError(
          'TSG_LOCKED',
          timeoutMs === 0 && options.reportedTimeoutMs === undefined
            ? `${what} is held by another tsgraph process`
            : `${what} is held by another tsgraph process (waited ${formatWait(options.reportedTimeoutMs ?? timeoutMs)})`,
          { data: { path, timeoutMs } },
        );
      }
      if (!waiting) {
        waiting = true;
        options.onWait?.(path);
        notifyPoint(`lock-wait:${name}`);
      }
      await sleep(delay, undefined, { signal: options.signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 200);
    }
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/**
 * A readers/writer lock that a writer cannot starve on. Exclusive: take
 * `<name>.intent` (new readers now wait), then `<name>` once current readers
 * are gone; both are held until release. Shared: take `<name>.intent`
 * exclusively for a moment (only ever held long by a writer, so the wait is
 * the writer's queue), take `<name>` shared, let the intent go. Both waits
 * share one deadline.
 */
export async function acquireFairLock(lockDir: string, name: string, options: LockOptions = {}): Promise<FileLock> {
  const total = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + total;
  const left = () => Math.max(0, deadline - Date.now());
  const intent = await acquireLock(lockDir, `${name}.intent`, { ...options, shared: false });
  let main: FileLock;
  try {
    // Both waits share the deadline; a refusal reports the whole wait the caller asked for.
    main = await acquireLock(lockDir, name, { ...options, timeoutMs: left(), reportedTimeoutMs: total });
  } catch (err) {
    intent.release();
    throw err;
  }
  if (options.shared) {
    intent.release();
    return main;
  }
  // The writer keeps its intent until it is done: one lock object releases both.
  return main.withAlso(intent);
}

/**
 * flock on a directory itself (no lock file to pile up): marks a staging or
 * half-removed layer dir as in use by a live process. Returns undefined when
 * another process holds it (or the dir is gone).
 */
export function tryLockDir(dir: string, options: { shared?: boolean } = {}): FileLock | undefined {
  let fd: number;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    if (tryLock(fd, options.shared ?? false)) return new FileLock(dir, fd);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  fs.closeSync(fd);
  return undefined;
}
