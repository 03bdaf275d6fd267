/**
 * A small, fresh filesystem on a loop file: for ENOSPC tests (a root that
 * fills up for real) and anything that must not churn the machine's disk.
 * cleanup() unmounts everything below it, detaches the loop device and
 * deletes the file.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { unmountBelow } from './tmpfs.js';
import { makeTempDir } from './tmp.js';

export interface LoopFs {
  dir: string;
  /** Bytes free for an unprivileged writer right now (statfs bavail). */
  free(): number;
  cleanup(): void;
}

export function makeLoopFs(type: 'ext4' | 'btrfs', size: string): LoopFs {
  const base = makeTempDir(`tsgraph-${type}-`);
  const image = join(base, 'fs.img');
  const dir = join(base, 'mnt');
  fs.mkdirSync(dir);
  execFileSync('truncate', ['-s', size, image]);
  if (type === 'ext4') execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
  else execFileSync('mkfs.btrfs', ['-q', '-f', image]);
  execFileSync('mount', ['-o', 'loop', image, dir]);
  return {
    dir,
    free() {
      const st = fs.statfsSync(dir);
      return st.bavail * st.bsize;
    },
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
