/**
 * A fresh btrfs filesystem on a loop file (Debian's btrfs-progs for mkfs
 * only). cleanup() unmounts everything below it, detaches the loop device
 * and deletes the file.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { unmountBelow } from './tmpfs.js';
import { makeTempDir } from './tmp.js';

export interface LoopFs {
  dir: string;
  cleanup(): void;
}

export function makeBtrfs(size = '2g'): LoopFs {
  const base = makeTempDir('tsgraph-btrfs-');
  const image = join(base, 'fs.img');
  const dir = join(base, 'mnt');
  fs.mkdirSync(dir);
  execFileSync('truncate', ['-s', size, image]);
  execFileSync('mkfs.btrfs', ['-q', '-f', image]);
  execFileSync('mount', ['-o', 'loop', image, dir]);
  return {
    dir,
    cleanup() {
      unmountBelow(dir);
      execFileSync('umount', [dir]);
      // mount -o loop sets autoclear; make sure the device is really gone.
      const loops = execFileSync('losetup', ['-j', image]).toString().trim();
      for (const line of loops.split('\n').filter(Boolean)) execFileSync('losetup', ['-d', line.split(':')[0]!]);
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}

export function hasBtrfsTools(): boolean {
  try {
    execFileSync('mkfs.btrfs', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
