/**
 * Changes → an OCI layer tar. Deletions become `.wh.<name>`, opaque
 * directories a `.wh..wh..opq` entry inside them, hardlinks within the layer
 * stay hardlinks, xattrs travel as PAX `SCHILY.xattr.*`. Overlay's own
 * xattrs never leave: from an overlay upper, `trusted.overlay.*` is dropped
 * and image xattrs stored escaped (`trusted.overlay.overlay.X`) are exported
 * under their real name again.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { OverlayChange } from './changes.js';
import { unescapeOverlayXattr, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js';
import { readXattrs } from './xattr.js';
import { paxHeaderBlocks } from './tar-header.js';
import { encodePaxRecord } from './pax.js';
import { splitDev } from '../util/fs-helpers.js';

export interface GenerateOptions {
  /** Where A/C entries are read from: the overlay upper, or a full tree. */
  root: string;
  /** `overlay-upper` strips overlay-internal xattrs and unescapes image ones. */
  source: 'overlay-upper' | 'tree';
}

function exportXattrs(path: string, source: GenerateOptions['source']): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  for (const [name, value] of readXattrs(path)) {
    let key = name;
    if (source === 'overlay-upper' && name.startsWith('trusted.overlay.')) {
      if (!name.startsWith('trusted.overlay.overlay.')) continue; // overlay's own bookkeeping
      key = unescapeOverlayXattr(name);
    }
    out.push([`SCHILY.xattr.${key}`, value]);
  }
  return out;
}

const utf8Safe = (b: Buffer) => Buffer.from(b.toString('utf8'), 'utf8').equals(b);


/**
 * Header fields for an entry with these xattrs. tar-stream writes PAX values
 * as UTF-8 strings; a binary value (security.capability) would be mangled,
 * so then we write the PAX header ourselves, byte-exact, with the path in it,
 * and hand tar-stream a ustar-sized placeholder name it needs no PAX for.
 */
function withXattrs(
  header: { name: string; linkname?: string },
  xattrs: Array<[string, Buffer]>,
): { pre?: Buffer; header: Record<string, unknown> } {
  if (xattrs.every(([, v]) => utf8Safe(v))) {
    return { header: { ...header, pax: Object.fromEntries(xattrs.map(([k, v]) => [k, v.toString('utf8')])) } };
  }
  const records = [encodePaxRecord('path', Buffer.from(header.name)), ...xattrs.map(([k, v]) => encodePaxRecord(k, v))];
  if (header.linkname) records.push(encodePaxRecord('linkpath', Buffer.from(header.linkname)));
  const short = (s: string) => (Buffer.byteLength(s) <= 100 ? s : `PaxHeaders/${createHash('sha256').update(s).digest('hex').slice(0, 40)}`);
  return {
    pre: Buffer.concat(records),
    header: { ...header, name: short(header.name), ...(header.linkname ? { linkname: short(header.linkname) } : {}) },
  };
}

function devParts(rdev: number): { devmajor: number; devminor: number } {
  const { major, minor } = splitDev(rdev);
  return { devmajor: major, devminor: minor };
}

/** Streams the layer tar for `changes` (sorted, parents before children). */
export function generateLayerTar(changes: OverlayChange[], options: GenerateOptions): Readable {
  const pack = tar.pack();
  const write = (header: Partial<tar.Header> & { name: string }, body?: Readable): Promise<void> =>
    new Promise((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (!body) {
        // A file entry without a buffer waits for a body stream: give regular files an empty one.
        if ((header.type ?? 'file') === 'file') pack.entry(header as tar.Header, Buffer.alloc(0), cb);
        else pack.entry(header as tar.Header, cb);
        return;
      }
      const entry = pack.entry(header as tar.Header, cb);
      body.on('error', reject);
      body.pipe(entry);
    });

  const run = async () => {
    const inodes = new Map<string, string>();
    for (const change of changes) {
      const rel = change.path.replace(/^\/+/, '');
      if (change.kind === 'D') {
        const i = rel.lastIndexOf('/');
        const name = i < 0 ? `${WHITEOUT_PREFIX}${rel}` : `${rel.slice(0, i)}/${WHITEOUT_PREFIX}${rel.slice(i + 1)}`;
        await write({ name, type: 'file', size: 0, mode: 0o644, mtime: new Date(0) });
        continue;
      }
      const abs = join(options.root, rel);
      const st = fs.lstatSync(abs);
      const xattrs = exportXattrs(abs, options.source);
      const linkname = st.isSymbolicLink() ? fs.readlinkSync(abs) : st.nlink > 1 ? inodes.get(`${st.dev}:${st.ino}`) : undefined;
      const { pre, header: named } = withXattrs({ name: rel, ...(linkname ? { linkname } : {}) }, xattrs);
      // tar-stream gives bodies to regular files only: the byte-exact PAX header goes in raw,
      // between entries (write() awaited the previous one, so the pack is idle here).
      if (pre) pack.push(paxHeaderBlocks(`PaxHeaders/${createHash('sha256').update(rel).digest('hex').slice(0, 40)}`, pre));
      const base = { ...named, name: named.name as string, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.isDirectory()) {
        await write({ ...base, type: 'directory' });
        if (change.opaque) await write({ name: `${rel}/${WHITEOUT_OPAQUE}`, type: 'file', size: 0, mode: 0o644, mtime: new Date(0) });
      } else if (st.isSymbolicLink()) {
        await write({ ...base, type: 'symlink' });
      } else if (st.nlink > 1 && inodes.has(`${st.dev}:${st.ino}`)) {
        await write({ ...base, type: 'link' });
      } else if (st.isFile()) {
        if (st.nlink > 1) inodes.set(`${st.dev}:${st.ino}`, rel);
        await write({ ...base, type: 'file', size: st.size }, fs.createReadStream(abs));
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await write({ ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', ...devParts(st.rdev) });
      } else if (st.isFIFO()) {
        await write({ ...base, type: 'fifo' });
      }
      // Sockets are not layer content.
    }
    pack.finalize();
  };
  run().catch((err: unknown) => pack.destroy(err as Error));
  return pack as unknown as Readable;
}
