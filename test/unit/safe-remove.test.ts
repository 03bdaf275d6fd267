/**
 * Removing a layer that a still-running container swaps under us: a
 * directory replaced by a symlink to a host directory, before it is opened
 * or while it is being emptied, must never lead the removal onto the host
 * (a path-based rm -rf would empty the host dir). Swaps are made exactly at
 * the walk's steps through safeDirHooks, not with sleeps.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { TsgraphError } from '../../src/errors.js';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { safeDirHooks } from '../../src/util/safe-dir.js';
import { removeTree } from '../../src/util/safe-remove.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

describe('removeTree never follows what a container swaps in', () => {
  let base: string;
  let host: string;
  let layer: string;

  beforeEach(() => {
    base = makeTempDir('tsgraph-safe-rm-');
    host = join(base, 'host');
    layer = join(base, 'layer');
    fs.mkdirSync(join(host, 'etc'), { recursive: true });
    fs.writeFileSync(join(host, 'etc', 'shadow'), 'secret');
    fs.mkdirSync(join(layer, 'd', 'sub'), { recursive: true });
    for (let i = 0; i < 5; i++) fs.writeFileSync(join(layer, 'd', `f${i}`), 'x');
    fs.writeFileSync(join(layer, 'd', 'sub', 'deep'), 'y');
    fs.writeFileSync(join(layer, Buffer.from('caf\xe9', 'latin1').toString('latin1')), 'z');
    fs.writeFileSync(Buffer.concat([Buffer.from(`${layer}/`), Buffer.from([0x63, 0x61, 0x66, 0xe8])]), 'latin-1 name');
  });
  afterEach(() => {
    safeDirHooks.beforeOpen = undefined;
    removeDir(base);
  });

  const hostIntact = () => assert.equal(fs.readFileSync(join(host, 'etc', 'shadow'), 'utf8'), 'secret', 'the host file survives');

  it('a plain tree (byte names too) is removed completely', () => {
    removeTree(layer);
    assert.ok(!fs.existsSync(layer));
    hostIntact();
  });

  it('never empties a filesystem mounted inside the tree (a volume bound into a container)', () => {
    const volume = join(base, 'volume');
    fs.mkdirSync(volume);
    fs.writeFileSync(join(volume, 'keep.txt'), 'user data');
    execFileSync('mount', ['--bind', volume, join(layer, 'd', 'sub')]);
    try {
      assert.throws(() => removeTree(layer), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_IN_USE');
      assert.equal(fs.readFileSync(join(volume, 'keep.txt'), 'utf8'), 'user data');
    } finally {
      execFileSync('umount', [join(layer, 'd', 'sub')]);
    }
    removeTree(layer);
    assert.ok(!fs.existsSync(layer));
    assert.equal(fs.readFileSync(join(volume, 'keep.txt'), 'utf8'), 'user data');
  });

  it('a dir swapped for a symlink to the host after it was listed', () => {
    let swapped = false;
    safeDirHooks.beforeOpen = (_root, rel) => {
      if (rel === 'd' && !swapped) {
        swapped = true;
        fs.renameSync(join(layer, 'd'), join(layer, 'd.moved'));
        fs.symlinkSync(host, join(layer, 'd'));
      }
    };
    removeTree(layer);
    assert.ok(swapped);
    assert.ok(!fs.existsSync(layer), 'the layer and what was moved inside it are gone');
    hostIntact();
  });

  it('a dir swapped for a symlink to the host while it is being emptied', () => {
    let swapped = false;
    safeDirHooks.beforeOpen = (_root, rel) => {
      if (rel === 'd/f2' && !swapped) {
        swapped = true;
        fs.renameSync(join(layer, 'd'), join(layer, 'd.moved'));
        fs.symlinkSync(join(host, 'etc'), join(layer, 'd'));
      }
    };
    removeTree(layer);
    assert.ok(swapped);
    assert.ok(!fs.existsSync(layer));
    hostIntact();
    assert.deepEqual(fs.readdirSync(join(host, 'etc')), ['shadow']);
  });
});
