/**
 * The batch planner of the applier (apply.ts): decides, from the applier's
 * model of the tree alone (apply-model.ts), whether an entry can be queued as
 * native ops (apply-batch.ts) and queues them, updating the model exactly as
 * the synchronous path (ensureDir, entry()) would.
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { TsgraphError } from '../errors.js';
import { displayPath } from '../util/byte-path.js';
import { lstatOrNull } from '../util/fs-helpers.js';
import { type NativeBatch, type OpMeta, MAX_BATCHED_FILE } from './apply-batch.js';
import type { ApplyModel } from './apply-model.js';
import type { Entry } from './entry.js';
import { MAX_PATH_BYTES, PATH_MAX, joinRel, parentOf } from './paths.js';

const NO_META: OpMeta = { owner: false, uid: 0, gid: 0, perm: undefined, mtime: undefined };

/** What the planner needs of the applier. */
export interface PlanContext {
  model: ApplyModel;
  batch: NativeBatch;
  /** Bytes of the root path with its slash (for the PATH_MAX check). */
  rootLength: number;
  abs(rel: string): Buffer;
  lowerDir: ((rel: string) => fs.Stats | null) | undefined;
  explicitDir: ((rel: string) => void) | undefined;
  /** Counts file content written. */
  wrote(bytes: number): void;
}

/**
 * Queues entry `e` at `rel` as native ops when the model alone decides
 * everything it needs (see apply-batch.ts); false, with nothing changed and
 * the body untouched, when the synchronous path must handle it.
 *
 * Mirrors ensureDir and entry() exactly. An lstat here is safe while a
 * batch runs: it is only made for a path not in `present` (no queued op
 * makes it) whose parents are directories that existed before (a directory
 * a queued op makes is in `fresh`, where nothing needs an lstat).
 */
export async function planBatched(ctx: PlanContext, rel: string, e: Entry, body: Readable): Promise<boolean> {
  const { model: m, batch } = ctx;
  const isFile = (e.type === 'file' || e.type === 'contiguous-file') && !e.sparse && e.size <= MAX_BATCHED_FILE;
  const isSymlink = e.type === 'symlink' && e.linkname !== '' && !e.linkname.includes('\0') && e.linkname.length <= MAX_PATH_BYTES;
  if (!(isFile || isSymlink || e.type === 'directory') || e.xattrs.length > 0 || m.whitedOut.has(rel)) return false;
  // A full path the kernel would refuse by name (PATH_MAX) goes the synchronous way, so both
  // ways fail alike: openat2 beneath the root fd alone would accept it.
  if (ctx.rootLength + rel.length >= PATH_MAX) return false;

  // Parents, as ensureDir would walk them: known dirs, lower dirs found by lstat, dirs to make.
  const dir = parentOf(rel);
  const found: string[] = [];
  const make: string[] = [];
  if (!(m.dirs.has(dir) && m.mine.has(dir))) {
    let prefix = '';
    for (const part of dir ? dir.split('/') : []) {
      prefix = joinRel(prefix, part);
      if (m.dirs.has(prefix)) continue;
      if (make.length === 0 && !(m.fresh.has(parentOf(prefix)) && !m.present.has(prefix))) {
        // Something this layer made there (not a dir), or unknown: ask, but only for a path no queued op makes.
        if (m.present.has(prefix)) return false;
        const st = lstatOrNull(ctx.abs(prefix));
        if (st?.isDirectory()) {
          found.push(prefix);
          continue;
        }
        if (st) return false; // a lower non-directory to replace
      }
      if (m.whitedOut.has(prefix)) return false; // the format must hear of it being made again
      make.push(prefix);
    }
  }
  // The entry's own name: known absent, a directory to merge with, or the synchronous path.
  let mergeDir = false;
  if (make.length > 0 || (m.fresh.has(dir) && !m.present.has(rel))) {
    // absent
  } else if (m.dirs.has(rel)) {
    if (e.type !== 'directory') return false;
    mergeDir = true;
  } else if (m.present.has(rel)) {
    return false;
  } else {
    const st = lstatOrNull(ctx.abs(rel));
    if (st && !(st.isDirectory() && e.type === 'directory')) return false;
    mergeDir = st !== null;
  }

  // Decided: update the model as ensureDir and entry() would, and queue the ops.
  for (const p of found) m.dirs.add(p);
  if (dir && !m.mine.has(dir)) {
    // As ensureDir: every parent belongs to this layer now (a known parent of a known one already does).
    let prefix = '';
    for (const part of dir.split('/')) {
      prefix = joinRel(prefix, part);
      m.mine.add(prefix);
    }
  }
  for (const p of make) {
    m.dirs.add(p);
    m.present.add(p);
    m.fresh.add(p);
    // Not whited out here: the parents' directory continues, with its attributes.
    const lower = ctx.lowerDir?.(p);
    if (lower?.isDirectory()) {
      await batch.mkdir(p, e.name, 0o755, { owner: true, uid: lower.uid, gid: lower.gid, perm: lower.mode & 0o7777, mtime: undefined });
      m.dirTimes.push([p, lower.mtime]);
    } else {
      await batch.mkdir(p, e.name, 0o755, NO_META);
    }
  }
  const meta: OpMeta = { owner: true, uid: e.uid, gid: e.gid, perm: e.perm, mtime: e.mtime };
  if (isFile) {
    await batch.file(rel, e.name, e.size, meta, (into) => readBody(body, into, e.name));
    ctx.wrote(e.size);
  } else if (e.type === 'directory') {
    body.resume();
    meta.mtime = undefined; // directory times come last (finish)
    ctx.explicitDir?.(rel);
    if (mergeDir) {
      const wait = batch.dirMeta(rel, e.name, meta);
      if (wait) await wait;
    } else {
      const wait = batch.mkdir(rel, e.name, 0o700, meta);
      if (wait) await wait;
      m.present.add(rel);
      m.fresh.add(rel);
    }
    m.dirs.add(rel);
    m.dirTimes.push([rel, e.mtime]);
  } else {
    body.resume();
    const wait = batch.symlink(rel, e.name, e.linkname, meta);
    if (wait) await wait;
  }
  m.mine.add(rel);
  m.present.add(rel);
  return true;
}

/** Reads an entry body of exactly `into.length` bytes into `into`. */
async function readBody(body: Readable, into: Buffer, name: string): Promise<void> {
  let off = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (off + chunk.length > into.length) throw new TsgraphError('TSG_INVALID_LAYER', `layer entry ${JSON.stringify(displayPath(name))} has more data than its size`);
    chunk.copy(into, off);
    off += chunk.length;
  }
  if (off !== into.length) throw new TsgraphError('TSG_INVALID_LAYER', `layer entry ${JSON.stringify(displayPath(name))} is truncated`);
}
