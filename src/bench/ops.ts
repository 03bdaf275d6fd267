/**
 * The operations the copy-up suite times, each one the syscalls a program
 * would make, and how the bytes a copy-up wrote are counted per driver.
 *
 * Every operation runs twice on the same file: the first run meets the file
 * as the image has it (overlay must copy it up from the lower layer, btrfs
 * share its extents with the image's snapshot); the second meets the copy
 * the first made. The clock brackets only the operation's syscalls.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';

/** The operations the copy-up benchmark times, each the first write of its kind to a lower file. */
export const COPY_UP_OPS = ['write', 'append', 'truncate', 'chmod', 'open-rdwr', 'rename-dir', 'hardlink'] as const;
/** One operation of the suite (see OP_DESCRIPTIONS). */
export type CopyUpOp = (typeof COPY_UP_OPS)[number];

/** What each copy-up operation does, for reports. */
export const OP_DESCRIPTIONS: Record<CopyUpOp, string> = {
  write: 'open(O_WRONLY), pwrite 1 byte at offset 0, close',
  append: 'open(O_WRONLY|O_APPEND), write 1 byte, close',
  truncate: 'truncate(2) to size-1 (second run: size-2): a shrink keeps the copy it forced visible',
  chmod: 'chmod(2) 0600 (second run: 0640): metadata only',
  'open-rdwr': 'open(O_RDWR), close, nothing written',
  'rename-dir': 'rename(2) of a directory of many files (EXDEV: copy the tree and delete it, as mv does)',
  hardlink: 'open(O_WRONLY), pwrite 1 byte, close, on one name of a hardlinked pair',
};

const ONE = Buffer.from('x');

function writeOne(path: string, flags: number): void {
  const fd = fs.openSync(path, flags);
  try {
    fs.writeSync(fd, ONE, 0, 1, flags & fs.constants.O_APPEND ? null : 0);
  } finally {
    fs.closeSync(fd);
  }
}

/** Where the op leaves the file or dir it touched (the rename's new name). */
export function touchedPath(op: CopyUpOp, path: string): string {
  return op === 'rename-dir' ? `${path}.r1` : path;
}

export interface OpRun {
  us: number;
  /** The rename met EXDEV (overlay without redirect_dir) and copied instead. */
  exdev?: boolean;
}

/**
 * Runs `op` on absolute `path` (a file of `size` bytes, or a dir for
 * rename-dir), `round` 1 (cold) or 2 (already copied), and times it.
 */
export function runOp(op: CopyUpOp, path: string, size: number, round: 1 | 2): OpRun {
  const c = fs.constants;
  let exdev = false;
  const t0 = process.hrtime.bigint();
  switch (op) {
    case 'write':
    case 'hardlink':
      writeOne(path, c.O_WRONLY);
      break;
    case 'append':
      writeOne(path, c.O_WRONLY | c.O_APPEND);
      break;
    case 'truncate':
      fs.truncateSync(path, Math.max(0, size - round));
      break;
    case 'chmod':
      fs.chmodSync(path, round === 1 ? 0o600 : 0o640);
      break;
    case 'open-rdwr':
      fs.closeSync(fs.openSync(path, c.O_RDWR));
      break;
    case 'rename-dir': {
      const from = round === 1 ? path : `${path}.r1`;
      const to = `${path}.r${round}`;
      try {
        fs.renameSync(from, to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        // What mv(1) does when the kernel refuses: copy, then delete the original. Both are the cost of the rename.
        fs.cpSync(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
        fs.rmSync(from, { recursive: true });
        exdev = true;
      }
      break;
    }
  }
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  return exdev ? { us, exdev } : { us };
}

/** st_blocks × 512 of a file, or of every file below a dir (our dirs are flat); 0 when absent. */
export function allocatedBytes(path: string): number {
  const st = fs.lstatSync(path, { throwIfNoEntry: false, bigint: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.blocks * 512;
  let n = 0;
  for (const e of fs.readdirSync(path)) n += allocatedBytes(join(path, e));
  return n;
}

/**
 * btrfs: bytes in extents the path no longer shares with the image's
 * snapshot (what CoW wrote), from `btrfs filesystem du` after a syncfs —
 * the CoW extents exist only once written back. st_blocks cannot tell: a
 * snapshot's file has all its blocks, shared or not.
 */
export function btrfsExclusiveBytes(paths: string[]): number[] {
  if (paths.length === 0) return [];
  execFileSync('sync', ['-f', paths[0]!], { stdio: 'ignore' });
  const out: number[] = [];
  const BATCH = 256;
  for (let i = 0; i < paths.length; i += BATCH) {
    const batch = paths.slice(i, i + BATCH);
    const text = execFileSync('btrfs', ['filesystem', 'du', '--raw', ...batch], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
    const byName = new Map<string, number>();
    for (const line of text.split('\n')) {
      const m = /^\s*(\d+)\s+(\d+)\s+\S+\s+(.*)$/.exec(line);
      if (m) byName.set(m[3]!, Number(m[2]));
    }
    for (const p of batch) out.push(byName.get(p) ?? 0);
  }
  return out;
}
