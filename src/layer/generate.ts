/**
 * Changes → an OCI layer tar. Deletions become `.wh.<name>`, opaque
 * directories a `.wh..wh..opq` entry inside them, hardlinks within the layer
 * stay hardlinks, xattrs travel as PAX `SCHILY.xattr.*`. Overlay's own
 * xattrs never leave: from an overlay upper, `trusted.overlay.*` is dropped
 * and image xattrs stored escaped (`trusted.overlay.overlay.X`) are exported
 * under their real name again.
 *
 * The source is a container's layer, live while we read it: every entry is
 * opened through util/safe-dir.ts (no symlink followed, fstat of the open fd
 * is the header, content and link target come from that fd). Names and link
 * targets are bytes: when one is not valid UTF-8 it travels as a raw PAX
 * `path`/`linkpath` record, byte-exact (tar-stream would encode it as UTF-8).
 */
import type * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { OverlayChange } from './changes.js';
import { type OverlayXattrPrefix, TRUSTED_OVERLAY, unescapeOverlayXattr, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js';
import { paxHeaderBlocks } from './tar-header.js';
import { OVERRIDE_STAT, type OwnerOverride, parseOverride, singleIdNamespace } from './owner-override.js';
import { encodePaxRecord } from './pax.js';
import { bytesOf } from '../util/byte-path.js';
import { splitDev } from '../util/fs-helpers.js';
import { type SafeNode, SafeTree } from '../util/safe-dir.js';

export interface GenerateOptions {
  /** Where A/C entries are read from: the overlay upper, or a full tree. */
  root: string;
  /** `overlay-upper` strips overlay-internal xattrs and unescapes image ones. */
  source: 'overlay-upper' | 'tree';
  /** Where an overlay upper keeps overlay's xattrs: `trusted.overlay.` (default) or `user.overlay.` (rootless). */
  overlayPrefix?: OverlayXattrPrefix | undefined;
}

function exportXattrs(node: SafeNode, source: GenerateOptions['source'], prefix: OverlayXattrPrefix = TRUSTED_OVERLAY): [Array<[string, Buffer]>, OwnerOverride | null] {
  const out: Array<[string, Buffer]> = [];
  let override: OwnerOverride | null = null;
  for (const [name, value] of node.xattrs()) {
    // The owner a single-id rootless store could not set (owner-override.ts): never exported as an xattr,
    // and read only in such a namespace (elsewhere a container could forge owners with it).
    if (name === OVERRIDE_STAT) {
      // And only on a file owned by that single id (what the store's own unpack makes).
      if (singleIdNamespace() && node.stats.uid === process.getuid?.()) override = parseOverride(value);
      continue;
    }
    let key = name;
    if (source === 'overlay-upper' && name.startsWith(prefix)) {
      if (!name.startsWith(`${prefix}overlay.`)) continue; // overlay's own bookkeeping
      key = unescapeOverlayXattr(name, prefix);
    }
    out.push([`SCHILY.xattr.${key}`, value]);
  }
  return [out, override];
}

const utf8Safe = (b: Buffer) => Buffer.from(b.toString('utf8'), 'utf8').equals(b);
// eslint-disable-next-line no-control-regex
const isAscii = (s: string) => /^[\x00-\x7f]*$/.test(s);
const hashName = (bytes: Buffer) => `PaxHeaders/${createHash('sha256').update(bytes).digest('hex').slice(0, 40)}`;

/**
 * Header fields for an entry named `name` (a byte string) with these xattrs.
 * tar-stream writes names and PAX values as UTF-8 strings: fine when they
 * are valid UTF-8. A binary value (security.capability) or a name that is
 * not UTF-8 (`caf\xe9`) would be mangled, so then we write the PAX header
 * ourselves, byte-exact, with path/linkpath in it, and hand tar-stream an
 * ASCII ustar-sized placeholder name it needs no PAX of its own for.
 */
function entryHeader(
  name: string,
  linkname: string | undefined,
  xattrs: Array<[string, Buffer]>,
): { pre?: Buffer; header: { name: string; linkname?: string; pax?: Record<string, string> } } {
  const nameBytes = bytesOf(name);
  const linkBytes = linkname === undefined ? undefined : bytesOf(linkname);
  if (utf8Safe(nameBytes) && (!linkBytes || utf8Safe(linkBytes)) && xattrs.every(([, v]) => utf8Safe(v))) {
    return {
      header: {
        name: nameBytes.toString('utf8'),
        ...(linkBytes ? { linkname: linkBytes.toString('utf8') } : {}),
        ...(xattrs.length ? { pax: Object.fromEntries(xattrs.map(([k, v]) => [k, v.toString('utf8')])) } : {}),
      },
    };
  }
  const records = [encodePaxRecord('path', nameBytes), ...xattrs.map(([k, v]) => encodePaxRecord(k, v))];
  if (linkBytes) records.push(encodePaxRecord('linkpath', linkBytes));
  const short = (s: string, b: Buffer) => (isAscii(s) && b.length <= 100 ? s : hashName(b));
  return {
    pre: Buffer.concat(records),
    header: { name: short(name, nameBytes), ...(linkBytes ? { linkname: short(linkname!, linkBytes) } : {}) },
  };
}

function devParts(rdev: number): { devmajor: number; devminor: number } {
  const { major, minor } = splitDev(rdev);
  return { devmajor: major, devminor: minor };
}

/** Header fields of the empty marker files (whiteouts, opaque markers). */
const MARKER = { type: 'file' as const, size: 0, mode: 0o644, mtime: new Date(0) };

/** The whiteout entry name for deleting `rel` (byte strings). */
function whiteoutName(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? `${WHITEOUT_PREFIX}${rel}` : `${rel.slice(0, i)}/${WHITEOUT_PREFIX}${rel.slice(i + 1)}`;
}

/** Streams the layer tar for `changes` (sorted, parents before children). */
export function generateLayerTar(changes: OverlayChange[], options: GenerateOptions): Readable {
  const pack = tar.pack();
  // A reader that destroys the tar early (an aborted diff or export stream, a failed commit)
  // gets no more entry callbacks: pending writes fail at once, so the walk below ends and
  // closes its fds (a leaked fd would keep the container's mount busy).
  let closed: Error | undefined;
  const pending = new Set<(err: Error) => void>();
  pack.on('close', () => {
    closed ??= new Error('the layer tar was closed before its end');
    for (const fail of pending) fail(closed);
    pending.clear();
  });
  const put = (header: Partial<tar.Header> & { name: string }, body?: Readable): Promise<void> =>
    new Promise((resolve, reject) => {
      if (closed) {
        body?.destroy();
        reject(closed);
        return;
      }
      const fail = (err: Error) => {
        body?.destroy(); // its fd goes with it (SafeNode.readStream)
        reject(err);
      };
      pending.add(fail);
      const cb = (err?: Error | null) => {
        pending.delete(fail);
        if (err) fail(err);
        else resolve();
      };
      if (!body) {
        // A file entry without a buffer waits for a body stream: give regular files an empty one.
        if ((header.type ?? 'file') === 'file') pack.entry(header as tar.Header, Buffer.alloc(0), cb);
        else pack.entry(header as tar.Header, cb);
        return;
      }
      const entry = pack.entry(header as tar.Header, cb);
      // When the consumer fails (a full disk under commit), the pipeline
      // destroys the pack, which destroys this entry with the same error:
      // without a listener that would crash the process instead of failing
      // the commit.
      entry.on('error', fail);
      body.on('error', (err) => {
        entry.destroy(err);
        fail(err);
      });
      body.pipe(entry);
    });
  /** One entry named by byte strings; a byte-exact PAX header goes first when needed. */
  const write = (fields: Partial<tar.Header>, name: string, linkname?: string, xattrs: Array<[string, Buffer]> = [], body?: Readable) => {
    const { pre, header } = entryHeader(name, linkname, xattrs);
    // tar-stream gives bodies to regular files only: the raw PAX header goes in between
    // entries (put() awaited the previous one, so the pack is idle here).
    if (pre) pack.push(paxHeaderBlocks(hashName(bytesOf(name)), pre));
    return put({ ...fields, ...header }, body);
  };

  const exportNode = async (node: SafeNode, rel: string, change: OverlayChange, inodes: Map<string, string>) => {
    const st: fs.Stats = node.stats;
    const key = `${st.dev}:${st.ino}`;
    // A file's content fd, opened first, also serves its xattrs (no second /proc lookup).
    if (st.isFile() && st.size > 0) node.contentFd();
    const [xattrs, override] = exportXattrs(node, options.source, options.overlayPrefix);
    // The mode on disk is the real one (tsgraph records only owners it could not set), and follows a chmod in the container.
    const base = { mode: st.mode & 0o7777, uid: override?.uid ?? st.uid, gid: override?.gid ?? st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      await write({ ...base, type: 'directory' }, rel, undefined, xattrs);
      if (change.opaque) await write(MARKER, `${rel}/${WHITEOUT_OPAQUE}`);
    } else if (st.isSymbolicLink()) {
      await write({ ...base, type: 'symlink' }, rel, node.readlink(), xattrs);
    } else if (st.nlink > 1 && inodes.has(key)) {
      await write({ ...base, type: 'link' }, rel, inodes.get(key), xattrs);
    } else if (st.isFile()) {
      if (st.nlink > 1) inodes.set(key, rel);
      await write({ ...base, type: 'file', size: st.size }, rel, undefined, xattrs, st.size > 0 ? node.readStream() : undefined);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      await write({ ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', ...devParts(st.rdev) }, rel, undefined, xattrs);
    } else if (st.isFIFO()) {
      await write({ ...base, type: 'fifo' }, rel, undefined, xattrs);
    }
    // Sockets are not layer content.
  };

  const run = async () => {
    const tree = new SafeTree(options.root);
    try {
      const inodes = new Map<string, string>();
      for (const change of changes) {
        const rel = change.path.replace(/^\/+/, '');
        if (change.kind === 'D') {
          await write(MARKER, whiteoutName(rel));
          continue;
        }
        // Gone since the changes were listed (or a parent is no longer a dir): nothing to export.
        const node = tree.open(rel);
        if (!node) continue;
        try {
          await exportNode(node, rel, change, inodes);
        } finally {
          node.close();
        }
      }
      pack.finalize();
    } finally {
      tree.close();
    }
  };
  run().catch((err: unknown) => pack.destroy(err as Error));
  return pack as unknown as Readable;
}
