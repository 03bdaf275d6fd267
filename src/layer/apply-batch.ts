/**
 * Batched native apply: the LayerApplier (apply.ts) queues the creations its
 * model of the tree has fully decided (small regular files with their content,
 * directories, symlinks, times) and native/apply-batch.cc runs them, in order,
 * on a libuv pool thread. While batch k runs, the applier parses the tar and
 * fills batch k+1 (two sets of buffers, swapped): the ~6 syscalls per file
 * leave the main thread.
 *
 * The native side re-checks every op (clean relative paths, integer ranges,
 * data ranges) and resolves each one beneath the root's fd with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), creating files O_EXCL|O_NOFOLLOW,
 * so even a queued op never follows a symlink, wherever it came from. A
 * failure there (ELOOP: a symlink on the way) is TSG_UNSAFE_PATH here.
 *
 * Ordering: ops of one batch run in order, batches one after another; the
 * applier awaits `flush()` before any synchronous filesystem work of its own
 * that could see or change what a queued op makes.
 */
import * as fs from 'node:fs';
import { TsgraphError, fromSystemError } from '../errors.js';
import { type NativeApplyBatch, nativeApplyBatch } from '../native.js';
import { displayPath } from '../util/byte-path.js';
import { unsafe } from './paths.js';
import { ownerNotMapped } from './owner-override.js';

export interface BatchLimits {
  /** Ops per batch. */
  ops: number;
  /** File content bytes per batch (the data buffer's size; RSS stays flat). */
  bytes: number;
}

export const DEFAULT_LIMITS: BatchLimits = { ops: 1024, bytes: 4 << 20 };
/** Files up to this size go through a batch; bigger ones stream on the JS path. */
export const MAX_BATCHED_FILE = 1 << 20;

/** Which metadata an op sets (native FLAGS): owner, mode, times. */
export interface OpMeta {
  uid: number;
  gid: number;
  /** Permission bits, or undefined to leave the mode the creation gave. */
  perm: number | undefined;
  /** undefined leaves the times alone (directories get theirs at the end). */
  mtime: Date | undefined;
  /** undefined leaves the owner alone. */
  owner: boolean;
}

interface BufferSet {
  ops: Float64Array;
  names: Buffer;
  data: Buffer;
}

/**
 * Test hooks: `afterBatch` runs each time a batch has completed, before the
 * next one is sent (to swap things in the tree between batches, as a racing
 * process would); `limits` overrides DEFAULT_LIMITS (tiny batches put batch
 * boundaries everywhere in a test tar).
 */
export const applyBatchHooks: {
  afterBatch?: ((root: string) => void) | undefined;
  limits?: BatchLimits | undefined;
} = {};

let supported: boolean | undefined;

/** Whether batched apply can run here (the addon is built, the kernel has openat2). */
export function batchSupported(): boolean {
  if (supported === undefined) {
    try {
      supported = nativeApplyBatch().applyBatchSupported();
    } catch {
      supported = false;
    }
  }
  return supported;
}

/** Turns a failed op into the error the applier would have thrown for that entry. */
function opError(err: unknown, name: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.errno !== 'number' || typeof e.code !== 'string') return err;
  // The model had only real directories on the way: a symlink there (ELOOP) or a
  // crossing out of the root (EXDEV) was swapped in by someone else.
  if (e.code === 'ELOOP' || e.code === 'EXDEV' || e.code === 'ENOTDIR') return unsafe(name, `a symlink, mount or file appeared on its path (${e.code}); not followed`);
  const system = fromSystemError(err) ?? ownerNotMapped(err, name);
  if (system) return system;
  return new TsgraphError('TSG_INVALID_LAYER', `layer entry ${JSON.stringify(displayPath(name))} cannot be applied: ${e.message}`, { cause: err });
}

/** Runs `push` after `wait` (a promise only when needed), or now. */
function after(wait: Promise<void> | undefined, push: () => void): Promise<void> | undefined {
  if (wait) return wait.then(push);
  push();
  return undefined;
}

export class NativeBatch {
  readonly #native: NativeApplyBatch;
  readonly #c: NativeApplyBatch['applyBatchConstants'];
  readonly #limits: BatchLimits;
  readonly #root: string;
  #fd = -1;
  #cur: BufferSet;
  #spare: BufferSet | undefined;
  #count = 0;
  #namesLen = 0;
  #dataLen = 0;
  /** Entry names of the ops being filled, for errors. */
  #entryNames: string[] = [];
  /** The batch on the pool thread: settles to its error (never rejects), or null. */
  #inFlight: Promise<unknown> | null = null;
  #inFlightSet: BufferSet | undefined;
  constructor(root: string, limits: BatchLimits = applyBatchHooks.limits ?? DEFAULT_LIMITS) {
    this.#native = nativeApplyBatch();
    this.#c = this.#native.applyBatchConstants;
    this.#root = root;
    this.#limits = { ops: Math.max(1, Math.min(limits.ops, this.#c.MAX_OPS)), bytes: Math.max(limits.bytes, MAX_BATCHED_FILE) };
    this.#cur = this.#newSet();
  }

  // Buffers start small and double up to the limits: a layer of a few files
  // (most test layers, small images) does not pay for megabytes per apply.
  #newSet(): BufferSet {
    return {
      ops: new Float64Array(Math.min(this.#limits.ops, 64) * this.#c.FIELDS),
      names: Buffer.allocUnsafeSlow(16 << 10),
      data: Buffer.allocUnsafeSlow(Math.min(this.#limits.bytes, 64 << 10)),
    };
  }

  /** Grows the set being filled to hold one more op with these sizes, within the limits; false when it cannot. */
  #grow(names: number, bytes: number): boolean {
    const set = this.#cur;
    const fields = this.#c.FIELDS;
    const opsCap = set.ops.length / fields;
    if (this.#count >= opsCap) {
      if (opsCap >= this.#limits.ops) return false;
      const ops = new Float64Array(Math.min(opsCap * 2, this.#limits.ops) * fields);
      ops.set(set.ops);
      set.ops = ops;
    }
    const namesMax = Math.max(64 << 10, Math.min(this.#limits.ops * 256, 4 << 20));
    if (this.#namesLen + names > set.names.length) {
      if (this.#namesLen + names > namesMax) return false;
      let size = set.names.length * 2;
      while (size < this.#namesLen + names) size *= 2;
      const grown = Buffer.allocUnsafeSlow(Math.min(size, namesMax));
      set.names.copy(grown, 0, 0, this.#namesLen);
      set.names = grown;
    }
    if (this.#dataLen + bytes > set.data.length) {
      if (this.#dataLen + bytes > this.#limits.bytes) return false;
      let size = set.data.length * 2;
      while (size < this.#dataLen + bytes) size *= 2;
      const grown = Buffer.allocUnsafeSlow(Math.min(size, this.#limits.bytes));
      set.data.copy(grown, 0, 0, this.#dataLen);
      set.data = grown;
    }
    return true;
  }

  /**
   * Makes room for one op with `names` name bytes and `bytes` of content:
   * a promise when the batch is full and must be sent first, else undefined
   * (most ops: no promise, no microtask).
   */
  #room(names: number, bytes: number): Promise<void> | undefined {
    const cur = this.#cur;
    if (this.#count < cur.ops.length / this.#c.FIELDS && this.#namesLen + names <= cur.names.length && this.#dataLen + bytes <= cur.data.length) {
      return undefined;
    }
    if (this.#grow(names, bytes)) return undefined;
    // Full: send it; the other set (grown as far as it needs) takes the op.
    return this.#send().then(() => {
      if (!this.#grow(names, bytes)) throw new TsgraphError('TSG_INTERNAL', 'an op does not fit an empty batch');
    });
  }

  #push(kind: number, rel: string, name: string, meta: OpMeta, extra: { link?: string; createMode?: number; dataOff?: number; dataLen?: number }): void {
    const c = this.#c;
    const set = this.#cur;
    const f = set.ops;
    const o = this.#count * c.FIELDS;
    f[o + c.KIND] = kind;
    f[o + c.PATH_OFF] = this.#namesLen;
    f[o + c.PATH_LEN] = set.names.write(rel, this.#namesLen, 'latin1');
    this.#namesLen += f[o + c.PATH_LEN]!;
    if (extra.link !== undefined) {
      f[o + c.LINK_OFF] = this.#namesLen;
      f[o + c.LINK_LEN] = set.names.write(extra.link, this.#namesLen, 'latin1');
      this.#namesLen += f[o + c.LINK_LEN]!;
    } else {
      f[o + c.LINK_OFF] = 0;
      f[o + c.LINK_LEN] = 0;
    }
    f[o + c.DATA_OFF] = extra.dataOff ?? 0;
    f[o + c.DATA_LEN] = extra.dataLen ?? 0;
    f[o + c.CREATE_MODE] = extra.createMode ?? 0;
    f[o + c.FLAGS] = (meta.owner ? c.OWNER : 0) | (meta.perm !== undefined ? c.SET_MODE : 0) | (meta.mtime ? c.SET_TIMES : 0);
    f[o + c.MODE] = meta.perm ?? 0;
    f[o + c.UID] = meta.uid;
    f[o + c.GID] = meta.gid;
    // Whole seconds and nanoseconds, as futimesSync would set them from the same Date.
    const ms = meta.mtime ? meta.mtime.getTime() : 0;
    const sec = Math.floor(ms / 1000);
    f[o + c.SEC] = sec;
    f[o + c.NSEC] = Math.round((ms - sec * 1000) * 1e6);
    this.#entryNames.push(name);
    this.#count++;
  }

  /** A regular file of `size` bytes (≤ MAX_BATCHED_FILE) whose content `fill` copies into the buffer it gets. */
  async file(rel: string, name: string, size: number, meta: OpMeta, fill: (into: Buffer) => Promise<void>): Promise<void> {
    const wait = this.#room(rel.length, size);
    if (wait) await wait;
    const dataOff = this.#dataLen;
    await fill(this.#cur.data.subarray(dataOff, dataOff + size));
    this.#dataLen += size;
    this.#push(this.#c.FILE, rel, name, meta, { dataOff, dataLen: size });
  }

  // The ops below return a promise only when they had to wait for room (see #room).
  mkdir(rel: string, name: string, createMode: number, meta: OpMeta): Promise<void> | undefined {
    const push = () => this.#push(this.#c.MKDIR, rel, name, meta, { createMode });
    return after(this.#room(rel.length, 0), push);
  }

  /** Owner/mode of a directory that already exists (a directory entry over a directory merges). */
  dirMeta(rel: string, name: string, meta: OpMeta): Promise<void> | undefined {
    const push = () => this.#push(this.#c.DIR_META, rel, name, meta, {});
    return after(this.#room(rel.length, 0), push);
  }

  symlink(rel: string, name: string, target: string, meta: OpMeta): Promise<void> | undefined {
    const push = () => this.#push(this.#c.SYMLINK, rel, name, { ...meta, perm: undefined }, { link: target });
    return after(this.#room(rel.length + target.length, 0), push);
  }

  times(rel: string, mtime: Date): Promise<void> | undefined {
    const push = () => this.#push(this.#c.TIMES, rel, rel, { uid: 0, gid: 0, perm: undefined, mtime, owner: false }, {});
    return after(this.#room(rel.length, 0), push);
  }

  /** Waits for the batch on the pool thread; throws its error, mapped to the entry it failed on. */
  async #wait(): Promise<void> {
    if (!this.#inFlight) return;
    const result = await this.#inFlight;
    this.#inFlight = null;
    this.#spare = this.#inFlightSet;
    this.#inFlightSet = undefined;
    if (result) throw result;
    applyBatchHooks.afterBatch?.(this.#root);
  }

  /** Hands the ops filled so far to the pool thread (after the previous batch finished). */
  async #send(): Promise<void> {
    await this.#wait();
    if (this.#count === 0) return;
    if (this.#fd < 0) this.#fd = fs.openSync(this.#root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    const set = this.#cur;
    const names = this.#entryNames;
    const count = this.#count;
    const running = this.#native.applyBatch(this.#fd, set.ops.subarray(0, count * this.#c.FIELDS), set.names.subarray(0, this.#namesLen), set.data.subarray(0, this.#dataLen));
    // Settles to the mapped error, so a failure nobody awaits yet is no unhandled rejection.
    this.#inFlight = running.then(
      () => null,
      (err: unknown) => {
        const i = (err as { opIndex?: unknown }).opIndex;
        return opError(err, typeof i === 'number' && i < count ? names[i]! : '');
      },
    );
    this.#inFlightSet = set;
    this.#cur = this.#spare ?? this.#newSet();
    this.#spare = undefined;
    this.#count = 0;
    this.#namesLen = 0;
    this.#dataLen = 0;
    this.#entryNames = [];
  }

  /** Runs everything queued and waits for it: afterwards the tree is what the applier's model says. */
  async flush(): Promise<void> {
    await this.#send();
    await this.#wait();
  }

  /**
   * On failure elsewhere: drops what is not sent, waits for what runs (so the
   * caller may remove the tree), ignores its error, closes the root fd.
   */
  async abandon(): Promise<void> {
    this.#count = 0;
    this.#namesLen = 0;
    this.#dataLen = 0;
    this.#entryNames = [];
    if (this.#inFlight) await this.#inFlight;
    this.#inFlight = null;
    this.close();
  }

  close(): void {
    if (this.#fd >= 0) fs.closeSync(this.#fd);
    this.#fd = -1;
  }
}
