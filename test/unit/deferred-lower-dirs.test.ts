/**
 * DeferredLowerDirs (overlay/lower-dir.ts), the parallel pull's stand-in for
 * parent layers not yet complete: settle() never follows a symlink the layer
 * itself made (a dir made implicitly, then a parent of it replaced by a link
 * out of the root), and it settles only dirs no entry gave attributes to (an
 * explicit 04017 / 1 ms dir keeps them, as in a sequential apply).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { DeferredLowerDirs, lowerDirStats } from '../../src/drivers/overlay/lower-dir.js';
import { applyTar } from '../../src/layer/apply.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { overlayFormat } from '../../src/layer/whiteout.js';
import { rawTar } from '../layer/raw-tar.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

async function apply(root: string, tar: Buffer, options: { lowerDir: (rel: string) => fs.Stats | null; explicitDir?: (rel: string) => void }) {
  const { tar: s, tap, done } = openLayerTar(Readable.from([tar]), 'none');
  done.catch(() => {});
  await applyTar(root, s, { format: overlayFormat, pax: tap.pax, ...options });
  await done;
}

describe('DeferredLowerDirs: settling implicit dirs after a parallel apply', () => {
  const base = makeTempDir('tsgraph-deferred-');
  after(() => removeDir(base));

  it('follows no symlink the layer made, and leaves an explicit 04017 dir as the tar says', async () => {
    const parent = `${base}/p`;
    const own = `${base}/c`;
    const seq = `${base}/seq`;
    const victim = `${base}/outside`;
    fs.mkdirSync(`${parent}/a/etc`, { recursive: true });
    fs.chownSync(`${parent}/a/etc`, 4242, 4242);
    fs.chmodSync(`${parent}/a/etc`, 0o777);
    fs.mkdirSync(`${parent}/b`, { recursive: true });
    fs.chownSync(`${parent}/b`, 4343, 4343);
    fs.chmodSync(`${parent}/b`, 0o750);
    fs.mkdirSync(own);
    fs.mkdirSync(seq);
    // Outside the root: a directory that happens to look like a marked one.
    fs.mkdirSync(`${victim}/etc`, { recursive: true });
    fs.chmodSync(`${victim}/etc`, 0o4017);
    const tar = rawTar([
      { name: 'a/etc/x', data: 'makes a/ and a/etc/ implicitly' },
      { name: 'a', type: '2', linkname: victim }, // the dir a becomes a symlink out of the root
      { name: 'explicit/f', data: 'makes explicit/ implicitly first' },
      { name: 'explicit/', type: '5', mode: 0o4017, pax: [['mtime', '0.001']] },
      { name: 'b/f', data: 'b/ implicit: settles to the lower (4343, 0750)' },
    ]);
    const deferred = new DeferredLowerDirs(own);
    await apply(own, tar, { lowerDir: deferred.lowerDir, explicitDir: deferred.explicitDir });
    await deferred.settle([parent]);
    await apply(seq, tar, { lowerDir: (rel) => lowerDirStats([parent], rel) });

    const out = fs.statSync(`${victim}/etc`);
    assert.equal(out.mode & 0o7777, 0o4017, 'the directory outside the root was changed');
    assert.equal(out.uid, 0);
    for (const rel of ['explicit', 'b']) {
      const s = fs.lstatSync(`${seq}/${rel}`);
      const p = fs.lstatSync(`${own}/${rel}`);
      assert.deepEqual([p.mode & 0o7777, p.uid, p.gid], [s.mode & 0o7777, s.uid, s.gid], rel);
    }
    assert.equal(fs.lstatSync(`${own}/b`).uid, 4343);
    assert.equal(fs.lstatSync(`${own}/explicit`).mtimeMs, fs.lstatSync(`${seq}/explicit`).mtimeMs);
  });
});

describe('directory times', () => {
  const base = makeTempDir('tsgraph-dirtime-');
  after(() => removeDir(base));

  it('a directory listed twice keeps the last entry\'s time (as GNU tar), batched or not', async () => {
    const tar = rawTar([
      { name: 'd/', type: '5', mtime: 1_000_000_000 },
      { name: 'd/f', data: 'x' },
      { name: 'd/', type: '5', mtime: 1_500_000_000 },
    ]);
    for (const batch of [true, false]) {
      const root = `${base}/${batch}`;
      fs.mkdirSync(root);
      const { tar: s, tap, done } = openLayerTar(Readable.from([tar]), 'none');
      await applyTar(root, s, { format: overlayFormat, pax: tap.pax, batch });
      await done;
      assert.equal(fs.lstatSync(`${root}/d`).mtimeMs, 1_500_000_000_000, `batch ${batch}`);
    }
  });
});
