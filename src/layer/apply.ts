/**
 * Applies one layer tar onto a directory, under the extraction rules:
 *
 *  - the tar goes through a TarGuard first (tar-scan.ts): strict headers, byte-
 *    exact PAX records, nothing after the end-of-archive marker;
 *  - every header becomes a validated Entry (entry.ts): numbers in range,
 *    names as byte strings, handed to fs as Buffers (util/byte-path.ts);
 *  - every name is cleaned first (no absolute names, no `..`): paths.ts;
 *  - every parent component must be a real directory. A symlink or file the
 *    layer itself created in a parent position means the tar tries to write
 *    through it: TSG_UNSAFE_PATH. One left by a lower layer (vfs, btrfs copy
 *    the parent first) is replaced by a directory — exactly what an overlay
 *    mount shows when an upper directory covers a lower symlink;
 *  - files are created with O_EXCL|O_NOFOLLOW after the old entry is removed,
 *    so nothing is ever opened through a symlink;
 *  - hardlink targets are cleaned the same way and must already exist in the tree;
 *  - whiteouts and opaque markers act on lower layers only, whatever their
 *    order in the tar (the OCI rule); the driver's WhiteoutFormat stores them;
 *  - owner, then mode, then xattrs with security.capability last (chown
 *    clears setuid/setgid and file capabilities), directory times last.
 *
 * Batched mode (apply-batch.ts, on by default where the addon and openat2
 * are): the creations the model decides alone (small plain files, dirs,
 * symlinks, no xattrs) are queued and run natively on a pool thread, beneath
 * the root's fd, never following a symlink. Everything else (whiteouts,
 * replacements, hardlinks, devices, xattrs, big and sparse files) first
 * awaits the queue, then runs the synchronous code below unchanged, so the
 * tree is what the model says whenever JavaScript touches it.
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { TsgraphError, UnsupportedError, fromSystemError, throwIfAborted } from '../errors.js';
import { displayPath, fsPath } from '../util/byte-path.js';
import { lstatOrNull, writeAll } from '../util/fs-helpers.js';
import { NativeBatch, batchSupported } from './apply-batch.js';
import { ApplyModel } from './apply-model.js';
import { type PlanContext, planBatched } from './apply-planner.js';
import { type Entry, resolveEntry } from './entry.js';
import { MAX_PATH_BYTES, baseOf, cleanEntryPath, joinRel, parentOf, unsafe } from './paths.js';
import { writeSparse } from './sparse.js';
import { type PaxRecords, TarGuard, scannedRecords } from './tar-scan.js';
import { type ApplyContext, type WhiteoutFormat, classifyWhiteout } from './whiteout.js';
import { mknod } from './xattr.js';
import { setEntryXattrs } from './entry-xattrs.js';
import { type WithOwnerOverride, chownOrRecord, inheritOverride, ownerNotMapped, singleIdNamespace } from './owner-override.js';
import { inInitialUserNs } from '../rootless/userns.js';

export interface ApplyOptions {
  format: WhiteoutFormat;
  signal?: AbortSignal | undefined;
  /**
   * Unused: applyTar takes the records from the TarTap of openLayerTar when
   * handed its stream, and scans any other stream itself, so its safety never
   * depends on what the caller passes here.
   */
  pax?: PaxRecords | undefined;
  /**
   * For a diff-layout driver (overlay): how the parent layers show a
   * directory, or null. A parent directory the tar does not list is then made
   * with the mode, owner and times the image already had there (as a full-tree
   * driver keeps them), not as a 0755 root dir that would hide them.
   */
  lowerDir?: ((rel: string) => fs.Stats | null) | undefined;
  /**
   * Told when the tar itself gives directory `rel` its owner, mode and times
   * (a directory entry): from then on they are the entry's, not inherited
   * (DeferredLowerDirs must not settle it).
   */
  explicitDir?: ((rel: string) => void) | undefined;
  /**
   * Batched native apply (apply-batch.ts). Default: on where supported,
   * unless TSGRAPH_APPLY_BATCH=0 (for A/B measurements).
   */
  batch?: boolean | undefined;
  /** Record unmappable owners in an xattr (owner-override.ts). Default: in a single-id user namespace. */
  ownersInXattr?: boolean | undefined;
}

export interface ApplyResult {
  /** Bytes of regular-file content written. */
  size: number;
  entries: number;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
/** A directory made with its creation mode only (an implicit parent no lower layer has). */

function kindOf(st: fs.Stats): string {
  return st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'special file';
}


export class LayerApplier implements ApplyContext {
  /** What this apply knows of the tree (apply-model.ts): saves lstats, keeps whiteouts to lower layers. */
  readonly #m = new ApplyModel();
  readonly #batch: NativeBatch | undefined;
  readonly #plan: PlanContext | undefined;
  #size = 0;
  #entries = 0;
  readonly #rootSlash: Buffer;
  readonly #ownersInXattr: boolean;

  constructor(
    readonly root: string,
    private readonly options: ApplyOptions,
  ) {
    if (fs.readdirSync(root).length === 0) this.#m.fresh.add('');
    this.#rootSlash = Buffer.from(`${root}/`, 'utf8');
    this.#ownersInXattr = options.ownersInXattr ?? singleIdNamespace();
    const batch = !this.#ownersInXattr && (options.batch ?? process.env.TSGRAPH_APPLY_BATCH !== '0');
    if (batch && batchSupported()) {
      this.#batch = new NativeBatch(root);
      // Built once: the planner runs for every entry.
      this.#plan = {
        model: this.#m,
        batch: this.#batch,
        rootLength: this.#rootSlash.length,
        abs: (rel) => this.abs(rel),
        lowerDir: options.lowerDir,
        explicitDir: options.explicitDir,
        wrote: (bytes) => {
          this.#size += bytes;
        },
      };
    }
  }

  /** lstat, or what we know without asking the kernel. */
  #lstat(rel: string): fs.Stats | null {
    if (this.#m.fresh.has(parentOf(rel)) && !this.#m.present.has(rel)) return null;
    return lstatOrNull(this.abs(rel));
  }

  notePresent(rel: string): void {
    this.#m.present.add(rel);
  }

  abs(rel: string): Buffer {
    if (!rel) return fsPath(this.root, rel);
    // fsPath, without re-encoding the root for every entry (the hot path).
    const out = Buffer.allocUnsafe(this.#rootSlash.length + rel.length);
    this.#rootSlash.copy(out, 0);
    out.write(rel, this.#rootSlash.length, 'latin1');
    return out;
  }

  ownsPath(rel: string): boolean {
    return this.#m.mine.has(rel);
  }

  ensureDir(rel: string): void {
    if (this.#m.dirs.has(rel) && this.#m.mine.has(rel)) return;
    let prefix = '';
    for (const part of rel ? rel.split('/') : []) {
      prefix = joinRel(prefix, part);
      if (!this.#m.dirs.has(prefix)) {
        const st = this.#lstat(prefix);
        if (st && !st.isDirectory()) {
          if (this.#m.mine.has(prefix)) throw unsafe(rel, `a parent is a ${kindOf(st)} this layer created (${displayPath(prefix)})`);
          this.removePath(prefix);
        }
        if (!st || !st.isDirectory()) {
          // Not whited out here: the parents' directory continues, with its attributes.
          if (!this.#mkdir(prefix, 0o755)) this.#inheritLower(prefix);
        }
        this.#m.dirs.add(prefix);
      }
      this.#m.mine.add(prefix);
    }
  }

  /** Makes directory `rel` (known absent) and, if this layer whited it out, tells the format. Returns whether it was. */
  #mkdir(rel: string, mode: number): boolean {
    const whitedOut = this.#m.whitedOut.delete(rel);
    fs.mkdirSync(this.abs(rel), { mode });
    this.#m.present.add(rel);
    this.#m.fresh.add(rel);
    if (whitedOut) this.options.format.recreated(this, rel, true);
    return whitedOut;
  }

  /** An implicit parent dir takes the lower layers' owner, mode and times (an explicit entry later overrides them). */
  #inheritLower(rel: string): void {
    const st = this.options.lowerDir?.(rel);
    if (!st?.isDirectory()) return;
    const path = this.abs(rel);
    fs.lchownSync(path, st.uid, st.gid);
    if (this.#ownersInXattr) inheritOverride(path, st as WithOwnerOverride);
    fs.chmodSync(path, st.mode & 0o7777);
    this.#m.dirTimes.push([rel, st.mtime]);
  }

  removePath(rel: string): void {
    if (rel === '') throw unsafe(rel, 'refusing to remove the layer root');
    // #whitedOut stays: a path stays whited out until this layer makes it again.
    const sets = [this.#m.dirs, this.#m.mine, this.#m.present, this.#m.fresh];
    // Known absent (a whiteout in a dir this layer made): nothing to remove, no syscall.
    if (this.#m.fresh.has(parentOf(rel)) && !this.#m.present.has(rel)) return;
    fs.rmSync(this.abs(rel), { recursive: true, force: true });
    // Every tracked path has its ancestors in `dirs`, so only a known directory
    // can have tracked paths below it; scanning the sets for anything else
    // would make a layer with many whiteouts quadratic.
    const wasDir = this.#m.dirs.has(rel);
    for (const set of sets) set.delete(rel);
    if (!wasDir) return;
    const under = `${rel}/`;
    for (const set of sets) {
      for (const p of set) if (p.startsWith(under)) set.delete(p);
    }
  }

  /** Checks, without creating anything, that every parent of `rel` is a real directory. */
  #requireRealParents(rel: string, name: string): void {
    let prefix = '';
    const dir = parentOf(rel);
    if (!dir) return;
    for (const part of dir.split('/')) {
      prefix = joinRel(prefix, part);
      if (this.#m.dirs.has(prefix)) continue;
      const st = lstatOrNull(this.abs(prefix));
      if (!st) throw new TsgraphError('TSG_INVALID_LAYER', `hardlink ${JSON.stringify(displayPath(name))} points at a missing path`);
      if (!st.isDirectory()) throw unsafe(name, `hardlink target goes through a ${kindOf(st)} (${displayPath(prefix)})`);
      this.#m.dirs.add(prefix);
    }
  }

  /** Whiteout of `dir/name`: hides the lower entry only, never the layer's own. */
  #whiteout(dir: string, name: string): void {
    const rel = joinRel(dir, name);
    this.ensureDir(dir);
    if (this.#m.mine.has(rel)) {
      // The layer has its own `rel`. A file hides the lower one by itself; a
      // directory must also stop showing the lower one's content.
      if (this.#lstat(rel)?.isDirectory()) this.options.format.opaque(this, rel);
      return;
    }
    this.options.format.whiteout(this, dir, name);
    this.#m.whitedOut.add(rel);
  }

  /** Applies one entry; `pax` holds the byte-exact PAX records by header offset. */
  async entry(header: tar.Header, body: Readable, pax: PaxRecords = new Map()): Promise<void> {
    throwIfAborted(this.options.signal);
    this.#entries++;
    let e: Entry;
    try {
      e = resolveEntry(header, pax);
    } catch (err) {
      body.resume();
      throw err;
    }
    const rel = cleanEntryPath(e.name);
    const whiteout = rel ? classifyWhiteout(baseOf(rel), e.name) : undefined;
    if (this.#batch) {
      if (!whiteout && rel !== '' && (await planBatched(this.#plan!, rel, e, body))) return;
      // The synchronous path below must see the tree the model describes.
      await this.#batch.flush();
    }
    if (whiteout) {
      body.resume();
      if (whiteout.kind === 'opaque') {
        this.ensureDir(parentOf(rel));
        this.options.format.opaque(this, parentOf(rel));
      } else if (whiteout.kind === 'whiteout') {
        this.#whiteout(parentOf(rel), whiteout.name);
      }
      return;
    }
    if (rel === '') {
      // The layer root itself ("./"): only a directory's metadata applies.
      body.resume();
      if (e.type === 'directory') this.#metadata('', e, 'directory');
      return;
    }
    this.ensureDir(parentOf(rel));
    const path = this.abs(rel);
    const existing = this.#lstat(rel);
    const whitedOut = this.#m.whitedOut.has(rel);
    // A directory over a directory merges; anything else replaces.
    if (existing && !(e.type === 'directory' && existing.isDirectory())) this.removePath(rel);

    switch (e.type) {
      case 'file':
      case 'contiguous-file':
        await this.#file(path, e, body);
        break;
      case 'directory':
        body.resume();
        if (!existing?.isDirectory()) this.#mkdir(rel, 0o700);
        this.#m.dirs.add(rel);
        this.#metadata(rel, e, 'directory');
        break;
      case 'symlink':
        body.resume();
        // Stored verbatim (bytes), relative or absolute; never followed by tsgraph.
        if (e.linkname === '' || e.linkname.includes('\0') || e.linkname.length > MAX_PATH_BYTES) {
          throw new TsgraphError('TSG_INVALID_LAYER', `symlink ${JSON.stringify(displayPath(e.name))} has an empty, over-long or NUL-holding target`);
        }
        fs.symlinkSync(Buffer.from(e.linkname, 'latin1'), path);
        this.#metadata(rel, e, 'symlink');
        break;
      case 'link':
        body.resume();
        this.#hardlink(rel, e);
        break;
      case 'character-device':
      case 'block-device':
        body.resume();
        if (e.type === 'character-device' && e.devmajor === 0 && e.devminor === 0) {
          throw unsafe(e.name, 'a character device 0/0 is an overlay whiteout; layers must use .wh. names');
        }
        if (!this.#device(path, e)) return;
        this.#metadata(rel, e, 'node');
        break;
      case 'fifo':
        body.resume();
        mknod(path, 'fifo', 0o600);
        this.#metadata(rel, e, 'node');
        break;
      default:
        body.resume();
        throw new UnsupportedError('TSG_UNSUPPORTED', `layer entry ${JSON.stringify(displayPath(e.name))} has unsupported tar type ${e.type}`);
    }
    this.#m.mine.add(rel);
    this.#m.present.add(rel);
    if (whitedOut && e.type !== 'directory') {
      this.#m.whitedOut.delete(rel);
      this.options.format.recreated(this, rel, false);
    }
  }

  async #file(path: Buffer, e: Entry, body: Readable): Promise<void> {
    const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      if (e.sparse) {
        this.#size += await writeSparse(fd, body, e.sparse, e.size, e.name);
      } else {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          writeAll(fd, chunk);
          this.#size += chunk.length;
        }
      }
      // Content first (a write clears setuid), then owner, mode, xattrs.
      this.#own(path, e, 'file', () => fs.fchownSync(fd, e.uid, e.gid));
      fs.fchmodSync(fd, e.perm);
      this.#xattrs(path, e);
      fs.futimesSync(fd, e.mtime, e.mtime);
    } finally {
      fs.closeSync(fd);
    }
  }

  #hardlink(rel: string, e: Entry): void {
    const targetRel = cleanEntryPath(e.linkname, 'hardlink target');
    if (targetRel === '') throw unsafe(e.name, 'hardlink to the layer root');
    this.#requireRealParents(targetRel, e.name);
    const target = this.abs(targetRel);
    const st = lstatOrNull(target);
    // Only an entry this layer wrote: what a lower layer left (only vfs/btrfs
    // have it here) or a whiteout this layer made (an overlay device, an aufs
    // marker) would make drivers disagree.
    if (!st || !this.#m.mine.has(targetRel) || this.#m.whitedOut.has(targetRel)) {
      throw new TsgraphError('TSG_INVALID_LAYER', `hardlink ${JSON.stringify(displayPath(e.name))} → ${JSON.stringify(displayPath(e.linkname))}: target not in this layer`);
    }
    if (st.isDirectory()) throw unsafe(e.name, 'hardlink to a directory');
    fs.linkSync(target, this.abs(rel));
  }

  /** Owner, then mode, then xattrs: chown clears setuid/setgid and security.capability. */
  #metadata(rel: string, e: Entry, kind: 'directory' | 'symlink' | 'node'): void {
    const path = this.abs(rel);
    this.#own(path, e, kind === 'directory' ? 'dir' : kind, () => fs.lchownSync(path, e.uid, e.gid));
    if (kind === 'symlink') {
      this.#xattrs(path, e);
      fs.lutimesSync(path, e.mtime, e.mtime);
      return;
    }
    // Parents were checked to be real directories and `path` was just made by us: chmod cannot be redirected.
    fs.chmodSync(path, e.perm);
    this.#xattrs(path, e);
    if (kind === 'directory') {
      this.#m.dirTimes.push([rel, e.mtime]);
      this.options.explicitDir?.(rel);
    } else fs.lutimesSync(path, e.mtime, e.mtime);
  }

  /** chown, or (single-id namespace) the owner recorded when it cannot be mapped. */
  #own(path: Buffer, e: Entry, type: string, chown: () => void): void {
    if (this.#ownersInXattr) chownOrRecord(path, { uid: e.uid, gid: e.gid, mode: e.perm, type }, true, chown);
    else chown();
  }

  /** mknod; false when a user namespace refuses it (EPERM): left out, as docker/podman do rootless. */
  #device(path: Buffer, e: Entry): boolean {
    try {
      mknod(path, e.type === 'character-device' ? 'char' : 'block', 0o600, e.devmajor, e.devminor);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPERM' && !inInitialUserNs()) return false;
      throw err;
    }
  }

  #xattrs(path: Buffer, e: Entry): void {
    setEntryXattrs(path, e, (name) => this.options.format.xattrName(name));
  }

  /** Directory times last: creating entries inside a directory changes its mtime. */
  async finish(): Promise<ApplyResult> {
    const batch = this.#batch;
    try {
      await batch?.flush();
      // A directory listed twice keeps the last entry's time, as GNU tar does (a child's
      // utimes does not touch its parent's mtime, so the order of the calls is free).
      const last = new Map(this.#m.dirTimes);
      for (const [rel, mtime] of last) {
        // Replaced or removed later in the layer: its time is not this entry's (a path through a
        // symlink that replaced a parent would even lead out of the root).
        if (!this.#m.dirs.has(rel)) continue;
        if (batch && rel !== '') {
          const wait = batch.times(rel, mtime);
          if (wait) await wait;
        }
        else fs.lutimesSync(this.abs(rel), mtime, mtime);
      }
      await batch?.flush();
    } finally {
      batch?.close();
    }
    return { size: this.#size, entries: this.#entries };
  }

  /** After a failure: waits for a batch still running (the caller may remove the tree next), drops the rest. */
  async abandon(): Promise<void> {
    await this.#batch?.abandon();
  }
}

/** A syscall failing on what an image asked for is the layer's fault, told as such; a full disk stays TSG_NO_SPACE. */
function asLayerError(err: unknown, name: string | undefined): unknown {
  const { code, errno } = (err ?? {}) as NodeJS.ErrnoException;
  if (err instanceof TsgraphError || typeof errno !== 'number' || typeof code !== 'string') return err;
  const system = fromSystemError(err) ?? ownerNotMapped(err, name ?? '');
  if (system) return system;
  return new TsgraphError('TSG_INVALID_LAYER', `layer entry ${JSON.stringify(displayPath(name ?? ''))} cannot be applied: ${(err as Error).message}`, { cause: err });
}

/** Extracts a whole (uncompressed) tar stream onto `root`. */
export async function applyTar(root: string, input: Readable, options: ApplyOptions): Promise<ApplyResult> {
  const applier = new LayerApplier(root, options);
  // Names are bytes: latin1 maps each byte of a ustar/GNU name to one char.
  const extract = tar.extract({ filenameEncoding: 'latin1' } as Parameters<typeof tar.extract>[0]);
  input.on('error', (err) => extract.destroy(err));
  // A tar straight from openLayerTar was scanned by its TarTap; anything else is scanned here.
  let records = scannedRecords(input);
  let head: Readable = input;
  if (!records) {
    const guard = new TarGuard();
    guard.on('error', (err) => extract.destroy(err));
    records = guard.scanner.records;
    head = input.pipe(guard);
  }
  head.pipe(extract);
  try {
    for await (const entry of extract) {
      try {
        await applier.entry(entry.header, entry as unknown as Readable, records);
      } catch (err) {
        throw asLayerError(err, entry.header.name);
      }
    }
    return await applier.finish();
  } catch (err) {
    // Nothing may still write into the tree when the caller cleans it up.
    await applier.abandon();
    input.unpipe();
    input.resume();
    if (err instanceof TsgraphError) throw err;
    const message = (err as Error).message ?? String(err);
    if (/Header exceeds max size|Invalid tar header|Unexpected end of data|Invalid header/i.test(message)) {
      throw new TsgraphError('TSG_INVALID_LAYER', `layer tar is malformed: ${message}`, { cause: err });
    }
    throw err;
  }
}

export { baseOf };
