/**
 * A fresh tmpfs for tests that churn trees (see DESIGN: repeated big deletes
 * on the root ext4 slow it down), and a mountinfo check that every test file
 * unmounts what it mounted.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before } from 'node:test';
import * as fs from 'node:fs';
import { readMountInfo } from '../../src/mount/index.js';
import { makeTempDir } from './tmp.js';

export interface Tmpfs {
  dir: string;
  cleanup(): void;
}

export function mountTmpfs(size = '2g'): Tmpfs {
  const dir = makeTempDir('tsgraph-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tsgraph-test', dir]);
  return {
    dir,
    cleanup() {
      unmountBelow(dir);
      execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Lazily unmounts whatever a failed test left mounted below `dir`, deepest first. */
export function unmountBelow(dir: string): void {
  const below = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of below) execFileSync('umount', ['-l', p]);
}

/** Mount points now, for a before/after comparison. */
export function mountPoints(): string[] {
  return readMountInfo()
    .map((m) => `${m.mountPoint} ${m.fsType}`)
    .sort();
}

/**
 * A fresh tmpfs for the enclosing describe(): mounted before its tests,
 * removed after them, and then the mount table must be as it was.
 */
export function suiteTmpfs(size: string): { readonly dir: string } {
  const mountsBefore = mountPoints();
  let tmp: Tmpfs | undefined;
  before(() => {
    tmp = mountTmpfs(size);
  });
  after(() => {
    tmp?.cleanup();
    assert.deepEqual(mountPoints(), mountsBefore, 'every mount made by the suite is gone');
  });
  return {
    get dir() {
      if (!tmp) throw new Error('the suite tmpfs is not mounted yet');
      return tmp.dir;
    },
  };
}
