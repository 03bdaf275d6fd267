/**
 * A fresh btrfs filesystem on a loop file (Debian's btrfs-progs for mkfs
 * only). cleanup() unmounts everything below it, detaches the loop device
 * and deletes the file.
 */
import { execFileSync } from 'node:child_process';
import { type LoopFs, makeLoopFs } from './loopfs.js';

export type { LoopFs };

/** A fresh btrfs of `size` on a loop file (see loopfs.ts). */
export function makeBtrfs(size = '2g'): LoopFs {
  return makeLoopFs('btrfs', size);
}

export function hasBtrfsTools(): boolean {
  try {
    execFileSync('mkfs.btrfs', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
