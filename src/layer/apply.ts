/**
 * Applies one layer tar onto a directory, under the extraction rules:
 *
 *  - every name is cleaned first (no absolute names, no `..`): paths.ts;
 *  - every parent component must be a real directory. A symlink or file the
 *    layer itself created in a parent position means the tar tries to write
 *    through it: TSG_UNSAFE_PATH. One left by a lower layer (vfs, btrfs copy
 *    the parent first) is replaced by a directory — exactly what an overlay
 *    mount shows when an upper directory covers a lower symlink;
 *  - files are created with O_EXCL|O_NOFOLLOW after the old entry is removed,
 *    so nothing is ever opened through a symlink;
 *  - hardlink targets are cleaned the same way and must already exist in the tree;
 *  - whiteouts and opaque markers go through the driver's WhiteoutFormat;
 *  - owner before mode (chown clears setuid/setgid), directory times last.
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { TsgraphError, UnsupportedError, throwIfAborted } from '../errors.js';
import { baseOf, cleanEntryPath, joinRel, parentOf, unsafe } from './paths.js';
import { type ApplyContext, type WhiteoutFormat, classifyWhiteout } from './whiteout.js';
import { mknod, setXattr } from './xattr.js';
import { type PaxRecords, xattrsFromPax } from './pax.js';
import { lstatOrNull, writeAll } from '../util/fs-helpers.js';

export interface ApplyOptions {
  format: WhiteoutFormat;
  signal?: AbortSignal | undefined;
  /** Raw PAX records by header offset (binary-exact xattrs); see pax.ts. */
  pax?: PaxRecords | undefined;
}

export interface ApplyResult {
  /** Bytes of regular-file content written. */
  size: number;
  entries: number;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const MAX_XATTR_VALUE = 64 * 1024;


function kindOf(st: fs.Stats): string {
  return st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'special file';
}

export class LayerApplier implements ApplyContext {
  readonly #owned = new Set<string>();
  readonly #dirs = new Set<string>(['']);
  /**
   * Dirs whose every entry this apply made (created by us, or the root when it
   * started empty, as an overlay diff dir does). In them a path exists iff it
   * is in #present, which saves an lstat per entry.
   */
  readonly #fresh = new Set<string>();
  readonly #present = new Set<string>();
  readonly #dirTimes: Array<[string, Date]> = [];
  #size = 0;
  #entries = 0;

  constructor(
    readonly root: string,
    private readonly options: ApplyOptions,
  ) {
    if (fs.readdirSync(root).length === 0) this.#fresh.add('');
  }

  /** lstat, or what we know without asking the kernel. */
  #lstat(rel: string): fs.Stats | null {
    if (this.#fresh.has(parentOf(rel)) && !this.#present.has(rel)) return null;
    return lstatOrNull(this.abs(rel));
  }

  notePresent(rel: string): void {
    this.#present.add(rel);
  }

  abs(rel: string): string {
    return rel ? `${this.root}/${rel}` : this.root;
  }

  ownsPath(rel: string): boolean {
    return this.#owned.has(rel);
  }

  ensureDir(rel: string): void {
    if (this.#dirs.has(rel)) return;
    let prefix = '';
    for (const part of rel.split('/')) {
      prefix = joinRel(prefix, part);
      if (this.#dirs.has(prefix)) continue;
      const st = this.#lstat(prefix);
      if (st && !st.isDirectory()) {
        if (this.#owned.has(prefix)) throw unsafe(rel, `a parent is a ${kindOf(st)} this layer created (${prefix})`);
        this.removePath(prefix);
      }
      if (!st || !st.isDirectory()) {
        fs.mkdirSync(this.abs(prefix), { mode: 0o755 });
        this.#owned.add(prefix);
        this.#present.add(prefix);
        this.#fresh.add(prefix);
      }
      this.#dirs.add(prefix);
    }
  }

  removePath(rel: string): void {
    if (rel === '') throw unsafe(rel, 'refusing to remove the layer root');
    const sets = [this.#dirs, this.#owned, this.#present, this.#fresh];
    // Known absent (a whiteout in a dir this layer made): nothing to remove, no syscall.
    if (this.#fresh.has(parentOf(rel)) && !this.#present.has(rel)) return;
    fs.rmSync(this.abs(rel), { recursive: true, force: true });
    // Every tracked path has its ancestors in #dirs, so only a known directory
    // can have tracked paths below it; scanning the sets for anything else
    // would make a layer with many whiteouts quadratic.
    const wasDir = this.#dirs.has(rel);
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
      if (this.#dirs.has(prefix)) continue;
      const st = lstatOrNull(this.abs(prefix));
      if (!st) throw new TsgraphError('TSG_INVALID_LAYER', `hardlink ${JSON.stringify(name)} points at a missing path`);
      if (!st.isDirectory()) throw unsafe(name, `hardlink target goes through a ${kindOf(st)} (${prefix})`);
      this.#dirs.add(prefix);
    }
  }

  async entry(header: tar.Header, body: Readable): Promise<void> {
    throwIfAborted(this.options.signal);
    this.#entries++;
    const rel = cleanEntryPath(header.name);
    const whiteout = rel ? classifyWhiteout(baseOf(rel), header.name) : undefined;
    if (whiteout) {
      body.resume();
      const dir = parentOf(rel);
      if (whiteout.kind === 'opaque') this.options.format.opaque(this, dir);
      else if (whiteout.kind === 'whiteout') this.options.format.whiteout(this, dir, whiteout.name);
      return;
    }
    if (rel === '') {
      // The layer root itself ("./"): only a directory's metadata applies.
      body.resume();
      if (header.type === 'directory') this.#metadata(this.root, header, 'directory');
      return;
    }
    this.ensureDir(parentOf(rel));
    const path = this.abs(rel);
    const existing = this.#lstat(rel);
    // A directory over a directory merges; anything else replaces.
    if (existing && !(header.type === 'directory' && existing.isDirectory())) this.removePath(rel);

    switch (header.type) {
      case 'file':
      case 'contiguous-file':
        await this.#file(path, header, body);
        break;
      case 'directory':
        body.resume();
        if (!existing?.isDirectory()) {
          fs.mkdirSync(path, { mode: 0o700 });
          this.#fresh.add(rel);
        }
        this.#dirs.add(rel);
        this.#metadata(path, header, 'directory');
        break;
      case 'symlink':
        body.resume();
        // Stored verbatim, relative or absolute; never followed by tsgraph.
        fs.symlinkSync(header.linkname ?? '', path);
        this.#metadata(path, header, 'symlink');
        break;
      case 'link':
        body.resume();
        this.#hardlink(rel, header);
        break;
      case 'character-device':
      case 'block-device': {
        body.resume();
        const major = header.devmajor ?? 0;
        const minor = header.devminor ?? 0;
        if (header.type === 'character-device' && major === 0 && minor === 0) {
          throw unsafe(header.name, 'a character device 0/0 is an overlay whiteout; layers must use .wh. names');
        }
        mknod(path, header.type === 'character-device' ? 'char' : 'block', 0o600, major, minor);
        this.#metadata(path, header, 'node');
        break;
      }
      case 'fifo':
        body.resume();
        mknod(path, 'fifo', 0o600);
        this.#metadata(path, header, 'node');
        break;
      default:
        body.resume();
        throw new UnsupportedError('TSG_UNSUPPORTED', `layer entry ${JSON.stringify(header.name)} has unsupported tar type ${header.type}`);
    }
    this.#owned.add(rel);
    this.#present.add(rel);
  }

  async #file(path: string, header: tar.Header, body: Readable): Promise<void> {
    const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        writeAll(fd, chunk);
        this.#size += chunk.length;
      }
      this.#xattrs(path, header);
      const { uid, gid } = ids(header);
      fs.fchownSync(fd, uid, gid);
      fs.fchmodSync(fd, (header.mode ?? 0o644) & 0o7777);
      const mtime = mtimeOf(header);
      fs.futimesSync(fd, mtime, mtime);
    } finally {
      fs.closeSync(fd);
    }
  }

  #hardlink(rel: string, header: tar.Header): void {
    const targetRel = cleanEntryPath(header.linkname ?? '', 'hardlink target');
    if (targetRel === '') throw unsafe(header.name, 'hardlink to the layer root');
    this.#requireRealParents(targetRel, header.name);
    const target = this.abs(targetRel);
    const st = lstatOrNull(target);
    if (!st) throw new TsgraphError('TSG_INVALID_LAYER', `hardlink ${JSON.stringify(header.name)} → ${JSON.stringify(header.linkname)}: target not in this layer`);
    if (st.isDirectory()) throw unsafe(header.name, 'hardlink to a directory');
    fs.linkSync(target, this.abs(rel));
  }

  #metadata(path: string, header: tar.Header, kind: 'directory' | 'symlink' | 'node'): void {
    this.#xattrs(path, header);
    const { uid, gid } = ids(header);
    fs.lchownSync(path, uid, gid);
    const mtime = mtimeOf(header);
    if (kind === 'symlink') {
      fs.lutimesSync(path, mtime, mtime);
      return;
    }
    // Parents were checked to be real directories and `path` was just made by us: chmod cannot be redirected.
    fs.chmodSync(path, (header.mode ?? (kind === 'directory' ? 0o755 : 0o644)) & 0o7777);
    if (kind === 'directory') this.#dirTimes.push([path, mtime]);
    else fs.lutimesSync(path, mtime, mtime);
  }

  #xattrs(path: string, header: tar.Header): void {
    for (const [name, value] of xattrsFromPax(header, this.options.pax)) {
      if (value.length > MAX_XATTR_VALUE) throw unsafe(header.name, `xattr ${name} is larger than ${MAX_XATTR_VALUE} bytes`);
      const stored = this.options.format.xattrName(name);
      if (stored) setXattr(path, stored, value);
    }
  }

  /** Directory times last: creating entries inside a directory changes its mtime. */
  finish(): ApplyResult {
    for (let i = this.#dirTimes.length - 1; i >= 0; i--) {
      const [path, mtime] = this.#dirTimes[i]!;
      fs.lutimesSync(path, mtime, mtime);
    }
    return { size: this.#size, entries: this.#entries };
  }
}

function ids(header: tar.Header): { uid: number; gid: number } {
  // PAX uid/gid carry ids too large for the ustar fields.
  const pax = (header.pax ?? {}) as Record<string, string | undefined>;
  const uid = pax.uid !== undefined ? Number(pax.uid) : (header.uid ?? 0);
  const gid = pax.gid !== undefined ? Number(pax.gid) : (header.gid ?? 0);
  if (!Number.isInteger(uid) || uid < 0 || uid > 0xfffffffe || !Number.isInteger(gid) || gid < 0 || gid > 0xfffffffe) {
    throw unsafe(header.name, `invalid owner ${pax.uid ?? header.uid}:${pax.gid ?? header.gid}`);
  }
  return { uid, gid };
}

function mtimeOf(header: tar.Header): Date {
  const pax = (header.pax as Record<string, string> | undefined)?.mtime;
  if (pax !== undefined && /^\d+(\.\d+)?$/.test(pax)) return new Date(Number(pax) * 1000);
  return header.mtime ?? new Date(0);
}

/** Extracts a whole (uncompressed) tar stream onto `root`. */
export async function applyTar(root: string, input: Readable, options: ApplyOptions): Promise<ApplyResult> {
  const applier = new LayerApplier(root, options);
  const extract = tar.extract();
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract);
  try {
    for await (const entry of extract) {
      await applier.entry(entry.header, entry as unknown as Readable);
    }
  } catch (err) {
    input.unpipe(extract);
    input.resume();
    if (err instanceof TsgraphError) throw err;
    const message = (err as Error).message ?? String(err);
    if (/Header exceeds max size|Invalid tar header|Unexpected end of data|Invalid header/i.test(message)) {
      throw new TsgraphError('TSG_INVALID_LAYER', `layer tar is malformed: ${message}`, { cause: err });
    }
    throw err;
  }
  return applier.finish();
}

export { baseOf };
