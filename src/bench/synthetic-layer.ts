/**
 * The image layer the copy-up suite writes to: for each file size, `files`
 * regular files (one fresh file per timed operation) and as many hardlinked
 * pairs; plus `renameDirs` directories of `renameDirFiles` small files each.
 * The tar is generated as a stream (plain ustar, nothing exotic), so a 1 GiB
 * file never sits in memory, and goes straight into the driver's applyDiff:
 * no registry, no content store, no second copy of the bytes.
 *
 * File data is incompressible (a random block repeated, each file stamped
 * with its own number): no filesystem can dedupe or compress it away, and no
 * file is sparse (overlay copy-up skips holes).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

export interface LayerPlan {
  /** File sizes and how many files of each (each op gets that many fresh files per size). */
  sizes: Array<{ size: number; files: number }>;
  /** Regular files per size (ops other than hardlink and rename-dir). */
  regular: boolean;
  /** Hardlinked pairs per size (the hardlink op). */
  hardlinks: boolean;
  renameDirs: number;
  renameDirFiles: number;
  renameFileSize: number;
}

export const filePath = (size: number, i: number): string => `s${size}/f${i}`;
/** The two names of hardlinked pair `i`; the bench writes to the first. */
export const linkPaths = (size: number, i: number): [string, string] => [`s${size}/h${i}.a`, `s${size}/h${i}.b`];
export const renameDirPath = (i: number): string => `rename/d${i}`;

/** Data bytes the layer holds (hardlink pairs count once). */
export function planBytes(plan: LayerPlan): number {
  let n = plan.renameDirs * plan.renameDirFiles * plan.renameFileSize;
  for (const s of plan.sizes) n += s.size * s.files * ((plan.regular ? 1 : 0) + (plan.hardlinks ? 1 : 0));
  return n;
}

const BLOCK = 512;
const CHUNK = 1 << 20;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar header; names here are short ASCII, so no PAX is ever needed. */
function header(name: string, type: 'file' | 'dir' | 'link', size: number, linkname = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'ascii');
  h.write(octal(type === 'dir' ? 0o755 : 0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(type === 'file' ? size : 0, 12), 124, 'ascii');
  h.write(octal(1_700_000_000, 12), 136, 'ascii');
  h.write(type === 'file' ? '0' : type === 'dir' ? '5' : '1', 156, 'ascii');
  h.write(linkname, 157, 100, 'ascii');
  h.write('ustar\0' + '00', 257, 'ascii');
  h.write('        ', 148, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

async function* tarStream(plan: LayerPlan): AsyncGenerator<Buffer> {
  const block = randomBytes(CHUNK);
  let serial = 0;
  function* file(name: string, size: number): Generator<Buffer> {
    yield header(name, 'file', size);
    // Stamp each file so no two are alike, without copying the big block.
    const stamp = Buffer.alloc(Math.min(size, 16));
    Buffer.from(`${++serial}`.padStart(16, '0')).copy(stamp);
    if (stamp.length) yield stamp;
    for (let off = stamp.length; off < size; off += CHUNK) yield block.subarray(0, Math.min(CHUNK, size - off));
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad) yield Buffer.alloc(pad);
  }
  for (const { size, files } of plan.sizes) {
    yield header(`s${size}/`, 'dir', 0);
    for (let i = 0; i < files; i++) {
      if (plan.regular) yield* file(filePath(size, i), size);
      if (plan.hardlinks) {
        const [a, b] = linkPaths(size, i);
        yield* file(a, size);
        yield header(b, 'link', 0, a);
      }
    }
  }
  if (plan.renameDirs > 0) {
    yield header('rename/', 'dir', 0);
    for (let d = 0; d < plan.renameDirs; d++) {
      yield header(`${renameDirPath(d)}/`, 'dir', 0);
      for (let i = 0; i < plan.renameDirFiles; i++) yield* file(`${renameDirPath(d)}/f${i}`, plan.renameFileSize);
    }
  }
  yield Buffer.alloc(2 * BLOCK);
}

/** The layer as an uncompressed tar stream. */
export function syntheticLayerTar(plan: LayerPlan): Readable {
  return Readable.from(tarStream(plan), { objectMode: false });
}
