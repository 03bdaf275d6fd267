/**
 * Reading a tree that someone else controls: a running container's layer,
 * an image's rootfs. A path checked with lstat and then opened by name again
 * can be a symlink to the host by the time it is opened, so here nothing is
 * looked up twice:
 *  - every entry is opened one component at a time relative to its parent's
 *    dir fd, with O_PATH|O_NOFOLLOW (a symlink is opened as itself; a device
 *    or FIFO is not opened for I/O, so no driver's open runs and nothing blocks);
 *  - `stats` come from fstat of that fd and are the only facts used;
 *  - content, xattrs, link targets and directory listings come from that fd:
 *    regular files and dirs are reopened for reading at once through the
 *    fd's /proc magic link, which lands on the very inode, never on a name
 *    looked up again (one fd per node serves stat, xattrs and content).
 * A swap after the open changes nothing we read; a swap before it is simply
 * what we see (a symlink is then exported as a symlink, not read through).
 *
 * Names are byte strings (util/byte-path.ts). Dir fds are held only along
 * the current path: close what you open (SafeNode.close, SafeTree.close).
 */
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { BusyError, UnsafeError } from '../errors.js';
import { nativeAt } from '../native.js';
import { byteString, bytesOf, displayPath } from './byte-path.js';

/**
 * Test hooks, for making the container-swaps-a-file race deterministic:
 * `beforeOpen` runs just before an entry is opened (after its name was
 * listed), `beforeRead` after a node was opened and fstat'ed, just before its
 * content, xattrs or link target are read. `rel` is the byte-string path
 * below the root the walk started at.
 */
export const safeDirHooks: {
  beforeOpen?: ((root: string, rel: string) => void) | undefined;
  beforeRead?: ((root: string, rel: string) => void) | undefined;
} = {};

const procFd = (fd: number) => `/proc/self/fd/${fd}`;
const CHUNK = 1 << 20;

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}

/** One opened entry: an O_PATH fd (a dir fd for directories) and its fstat. */
export class SafeNode {
  #closed = false;
  #content: number | undefined; // a regular file's readable fd, opened on first use
  #streams = 0; // readStream()s still reading #content: close() leaves it to them

  private constructor(
    /** A readable dir fd for directories, else O_PATH. */
    readonly fd: number,
    readonly stats: fs.Stats,
    /** The host path the walk started at (for messages and hooks). */
    readonly root: string,
    /** Byte-string path below `root` ('' for the root itself). */
    readonly rel: string,
  ) {}

  /**
   * Opens a host directory tsgraph or its caller chose (a layer dir, a mount
   * point) as the root of a walk. The trust boundary is below it: the root's
   * own path is the caller's, so it may be reached through a symlink.
   */
  static openRoot(path: string): SafeNode {
    const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      return new SafeNode(fd, fs.fstatSync(fd), path, '');
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Where this node is, for people. */
  get where(): string {
    return this.rel ? `${this.root}/${this.rel}` : this.root;
  }

  /** Names in this directory, as byte strings, in no particular order. */
  names(): string[] {
    this.#mustBeDir();
    return (fs.readdirSync(procFd(this.fd), { encoding: 'buffer' }) as Buffer[]).map(byteString);
  }

  /** Opens child `name` of this directory without following it; null when it is gone. */
  open(name: string): SafeNode | null {
    this.#mustBeDir();
    const rel = this.rel ? `${this.rel}/${name}` : name;
    safeDirHooks.beforeOpen?.(this.root, rel);
    const at = nativeAt();
    let fd: number;
    try {
      fd = at.openatNoFollow(this.fd, bytesOf(name), at.atConstants.O_PATH);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      // A mount point inside the tree (a host dir bound or propagated into a container's
      // merged view): what is behind it is not the container's, so it is never read.
      if (isErrno(err, 'EXDEV')) {
        throw new UnsafeError('TSG_UNSAFE_PATH', `${this.where}/${displayPath(name)} is a mount point inside the tree: not read`, { cause: err });
      }
      throw err;
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) {
        // A readable dir fd for the same inode (listing, fgetxattr without /proc).
        const dfd = fs.openSync(procFd(fd), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
        fs.closeSync(fd);
        fd = dfd;
      }
      // Regular files stay O_PATH until their content is wanted (a diff listing needs
      // none); devices, FIFOs and sockets are never opened for I/O at all.
      return new SafeNode(fd, st, this.root, rel);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** The symlink's target as a byte string (from this fd, never re-resolved). */
  readlink(): string {
    if (!this.stats.isSymbolicLink()) throw new UnsafeError('TSG_UNSAFE_PATH', `${this.where} is not a symlink`);
    safeDirHooks.beforeRead?.(this.root, this.rel);
    return byteString(nativeAt().freadlink(this.fd));
  }

  listXattrs(): string[] {
    return nativeAt().flistxattr(this.#content ?? this.fd);
  }

  getXattr(name: string): Buffer | null {
    return nativeAt().fgetxattr(this.#content ?? this.fd, name);
  }

  /** All xattrs of this node, name → value. */
  xattrs(): Map<string, Buffer> {
    safeDirHooks.beforeRead?.(this.root, this.rel);
    const out = new Map<string, Buffer>();
    for (const name of this.listXattrs()) {
      const v = this.getXattr(name);
      if (v) out.set(name, v);
    }
    return out;
  }

  /**
   * This regular file's readable fd (owned by the node: do not close it),
   * reopened from the O_PATH fd through its magic link: the inode fstat
   * described, whatever the name holds now. O_NONBLOCK: never waits.
   */
  contentFd(): number {
    if (!this.stats.isFile()) throw new UnsafeError('TSG_UNSAFE_PATH', `${this.where} is not a regular file`);
    safeDirHooks.beforeRead?.(this.root, this.rel);
    if (this.#content === undefined) {
      const c = nativeAt().atConstants;
      this.#content = fs.openSync(procFd(this.fd), c.O_RDONLY | c.O_NONBLOCK | c.O_NOCTTY);
    }
    return this.#content;
  }

  /**
   * The file's first `stats.size` bytes as a stream: exactly the size the
   * tar header says. A file that shrank meanwhile is an error (the container
   * is still writing it), never padded or read past. The node's fd stays
   * open until both the stream and close() are done.
   */
  readStream(): Readable {
    const fd = this.contentFd();
    const size = this.stats.size;
    const where = this.where;
    let pos = 0;
    this.#streams++;
    const release = (cb: () => void) => {
      this.#streams--;
      if (this.#closed && this.#streams === 0) fs.close(fd, () => cb());
      else cb();
    };
    return new Readable({
      read() {
        if (pos >= size) {
          this.push(null);
          return;
        }
        const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
        fs.read(fd, buf, 0, buf.length, pos, (err, n) => {
          if (err) return this.destroy(err);
          if (n === 0) return this.destroy(new BusyError('TSG_IN_USE', `${where} shrank while it was read (is the container still writing it?)`));
          pos += n;
          this.push(buf.subarray(0, n));
        });
      },
      destroy(err, cb) {
        release(() => cb(err));
      },
    });
  }

  /** The whole file, refused (TSG_UNSAFE_PATH) when bigger than `cap` bytes. */
  readAll(cap: number): Buffer {
    if (this.stats.size > cap) throw new UnsafeError('TSG_UNSAFE_PATH', `${this.where} is bigger than ${cap} bytes`);
    const fd = this.contentFd();
    const chunks: Buffer[] = [];
    let total = 0;
    // Bounded by the cap, whatever the file does meanwhile.
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, cap + 1 - total));
      const n = fs.readSync(fd, buf, 0, buf.length, total);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > cap) throw new UnsafeError('TSG_UNSAFE_PATH', `${this.where} is bigger than ${cap} bytes`);
    }
    return Buffer.concat(chunks);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.fd);
    if (this.#content !== undefined && this.#streams === 0) fs.closeSync(this.#content);
  }

  #mustBeDir(): void {
    if (!this.stats.isDirectory()) throw new UnsafeError('TSG_UNSAFE_PATH', `${this.where} is not a directory`);
  }
}

/** Do two regular files hold the same bytes? Read from their fds in chunks, bounded by the sizes. */
export function sameContent(a: SafeNode, b: SafeNode): boolean {
  if (a.stats.size !== b.stats.size) return false;
  const fa = a.contentFd();
  const fb = b.contentFd();
  const ba = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(a.stats.size, 1)));
  const bb = Buffer.allocUnsafe(ba.length);
  for (let pos = 0; pos < a.stats.size; ) {
    const want = Math.min(ba.length, a.stats.size - pos);
    const na = fs.readSync(fa, ba, 0, want, pos);
    const nb = fs.readSync(fb, bb, 0, want, pos);
    if (na !== nb || na === 0 || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
    pos += na;
  }
  return true;
}

/**
 * Opens paths below one root in turn (sorted, parents first, as a changes
 * list is), keeping the dir fds of the last path open so siblings cost one
 * openat each. Every component is opened without following; a component
 * that is no longer a directory makes the path "gone" (null).
 */
export class SafeTree {
  readonly #stack: SafeNode[];
  readonly #parts: string[] = [];

  constructor(root: string) {
    this.#stack = [SafeNode.openRoot(root)];
  }

  get root(): SafeNode {
    return this.#stack[0]!;
  }

  /** Opens `rel` (a byte string, no leading '/'); null when it or a parent is gone. Caller closes it. */
  open(rel: string): SafeNode | null {
    if (rel === '') throw new UnsafeError('TSG_UNSAFE_PATH', 'an empty path names no entry');
    const parts = rel.split('/');
    const name = parts.pop()!;
    let k = 0;
    while (k < this.#parts.length && k < parts.length && this.#parts[k] === parts[k]) k++;
    while (this.#parts.length > k) {
      this.#stack.pop()!.close();
      this.#parts.pop();
    }
    for (let i = k; i < parts.length; i++) {
      const d = this.#stack.at(-1)!.open(parts[i]!);
      if (!d) return null;
      if (!d.stats.isDirectory()) {
        d.close();
        return null;
      }
      this.#stack.push(d);
      this.#parts.push(parts[i]!);
    }
    return this.#stack.at(-1)!.open(name);
  }

  close(): void {
    while (this.#stack.length) this.#stack.pop()!.close();
    this.#parts.length = 0;
  }
}
