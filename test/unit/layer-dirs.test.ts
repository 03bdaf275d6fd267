/**
 * LayerDirs.build (issue 8, defect 16): a slow layer fill (vfs/btrfs copying
 * a parent tree) runs without the driver-wide lock, in a staging dir that
 * cleanup leaves alone while its builder lives, and the parent being copied
 * cannot be removed meanwhile. No mounts: only create/remove bookkeeping.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LayerDirs } from '../../src/drivers/layer-dirs.js';
import { TsgraphError } from '../../src/errors.js';
import { acquireLock } from '../../src/store/lock.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

describe('LayerDirs.build', () => {
  const home = makeTempDir('tsgraph-layerdirs-');
  after(() => removeDir(home));
  const dirs = new LayerDirs(home);
  const staging = () => fs.readdirSync(dirs.layersDir).filter((n) => n.startsWith('.staging-'));

  it('fills without the driver lock; meanwhile cleanup skips its staging dir and the parent cannot be removed', async () => {
    await dirs.build('base', undefined, false, (dir) => fs.writeFileSync(join(dir, 'f'), 'x'));
    let filling!: () => void;
    const inFill = new Promise<void>((resolve) => (filling = resolve));
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const child = dirs.build('child', 'base', false, async (dir) => {
      fs.writeFileSync(join(dir, 'g'), 'y');
      filling();
      await gate;
    });
    await inFill;
    // The driver lock is free while the fill runs: readers opening the store do not wait.
    (await acquireLock(dirs.lockDir, 'layers', { timeoutMs: 0 })).release();
    await assert.rejects(
      dirs.removeLayer('base', join(dirs.dir('base'), 'merged')),
      (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_IN_USE' && /being copied/.test(e.message),
    );
    assert.ok(dirs.exists('base'), 'a refused removal leaves the parent in place');
    await dirs.cleanup(() => {});
    assert.equal(staging().length, 1, "cleanup left the live builder's staging dir alone");
    finish();
    await child;
    assert.deepEqual(staging(), []);
    assert.equal(dirs.meta('child').parent, 'base');
    assert.equal(fs.readFileSync(join(dirs.dir('child'), 'g'), 'utf8'), 'y');
    await assert.rejects(dirs.build('child', 'base', false, () => {}), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_EXISTS');
    await dirs.removeLayer('child', join(dirs.dir('child'), 'merged'));
    await dirs.removeLayer('base', join(dirs.dir('base'), 'merged'));
    assert.deepEqual(dirs.ids(), []);
  });

  it('cleanup deletes the staging and half-removed dirs of dead processes', async () => {
    fs.mkdirSync(join(dirs.layersDir, '.staging-dead-0000'));
    fs.mkdirSync(join(dirs.layersDir, '.removing-dead-0000'));
    await dirs.cleanup(() => {});
    assert.deepEqual(fs.readdirSync(dirs.layersDir), []);
  });

  it('a parent that is gone is a clear TSG_NOT_FOUND, and leaves no staging dir', async () => {
    await assert.rejects(dirs.build('orphan', 'nope', false, () => {}), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_NOT_FOUND');
    assert.deepEqual(staging(), []);
  });
});
