/**
 * Issue 9 (create + mount latency): the shortcuts on the mount path answer
 * exactly what the slow ways answer.
 *  - a layer's `lower` file lists the ids below it; one that is missing or
 *    not exactly right (a layer made before it existed, a write cut short)
 *    is ignored for the meta walk;
 *  - isMountPoint by statx agrees with mountinfo (mounted, not mounted,
 *    missing, reached through a symlink, a name with a space);
 *  - readMountInfo(dir) skips parsing only when no line names the dir;
 *  - no layer is made on a container layer, so removing one scans no others.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LayerDirs } from '../../src/drivers/layer-dirs.js';
import { TsgraphError } from '../../src/errors.js';
import { isListedMountPoint, isMountPoint, readMountInfo } from '../../src/mount/mountinfo.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

describe('LayerDirs lower file', () => {
  const home = makeTempDir('tsgraph-lower-');
  after(() => removeDir(home));
  const dirs = new LayerDirs(home);
  const walk = (id: string) => dirs.chain(id).slice(1).map((m) => m.id);

  it('lists the ids below a layer, topmost first, as the meta walk does', async () => {
    await dirs.build('a', undefined, false, () => {});
    await dirs.build('b', 'a', false, () => {});
    await dirs.build('c', 'b', false, () => {});
    await dirs.build('ctr', 'c', true, () => {});
    assert.deepEqual(dirs.lowerIds('a'), []);
    assert.deepEqual(dirs.lowerIds('ctr'), ['c', 'b', 'a']);
    assert.deepEqual(dirs.lowerIds('ctr'), walk('ctr'));
    assert.equal(fs.readFileSync(join(dirs.dir('ctr'), 'lower'), 'utf8'), 'c\nb\na\n');
    assert.equal(fs.existsSync(join(dirs.dir('a'), 'lower')), false, 'a base layer has nothing below it');
  });

  it('ignores a lower file that is missing, short, unterminated, wrong or hostile, and walks the metas', () => {
    const file = join(dirs.dir('ctr'), 'lower');
    const good = fs.readFileSync(file, 'utf8');
    try {
      for (const bad of ['', 'c\nb\n', 'c\nb\na', 'c\nb\nz\nq\n', 'b\nc\na\n', '../x\nb\na\n', 'c\nb\n\0\0\n']) {
        fs.writeFileSync(file, bad);
        assert.deepEqual(dirs.lowerIds('ctr'), ['c', 'b', 'a'], `content ${JSON.stringify(bad)}`);
      }
      fs.rmSync(file);
      assert.deepEqual(dirs.lowerIds('ctr'), ['c', 'b', 'a'], 'no file (a layer made before it existed)');
    } finally {
      fs.writeFileSync(file, good);
    }
  });

  it('gives a child of a layer without the file a right one', async () => {
    fs.rmSync(join(dirs.dir('c'), 'lower'));
    await dirs.build('ctr2', 'c', true, () => {});
    assert.equal(fs.readFileSync(join(dirs.dir('ctr2'), 'lower'), 'utf8'), 'c\nb\na\n');
  });
});

describe('container layers are leaves', () => {
  const home = makeTempDir('tsgraph-leaf-');
  after(() => removeDir(home));
  const dirs = new LayerDirs(home);

  it('refuses a layer on a container layer, and removes a container layer without reading other layers', async () => {
    await dirs.build('img', undefined, false, () => {});
    await dirs.build('ctr', 'img', true, () => {});
    await assert.rejects(dirs.build('on-ctr', 'ctr', false, () => {}), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_USAGE');
    await assert.rejects(dirs.locked(() => dirs.create('on-ctr', 'ctr', true, () => {})), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_USAGE');
    assert.deepEqual(
      fs.readdirSync(dirs.layersDir).filter((n) => n.startsWith('.staging-') || n === 'on-ctr'),
      [],
      'nothing staged is left',
    );
    // An unrelated layer whose meta cannot be read: the children scan of an image layer trips on it; a container layer has none to scan.
    fs.mkdirSync(join(dirs.layersDir, 'junk', 'meta.json'), { recursive: true });
    await dirs.removeLayer('ctr', join(dirs.dir('ctr'), 'merged'));
    assert.equal(dirs.exists('ctr'), false);
    await assert.rejects(dirs.removeLayer('img', join(dirs.dir('img'), 'merged')), 'an image layer is still checked for children');
    fs.rmSync(join(dirs.layersDir, 'junk'), { recursive: true });
    await dirs.removeLayer('img', join(dirs.dir('img'), 'merged'));
  });
});

describe('isMountPoint by statx and by mountinfo', () => {
  let work: string;
  before(() => {
    work = makeTempDir('tsgraph-mountroot-');
    fs.mkdirSync(join(work, 'with space'));
    fs.mkdirSync(join(work, 'plain'));
    execFileSync('mount', ['-t', 'tmpfs', 'tsgraph-test', join(work, 'with space')]);
    fs.symlinkSync(join(work, 'with space'), join(work, 'link'));
  });
  after(() => {
    execFileSync('umount', [join(work, 'with space')]);
    removeDir(work);
  });

  it('answers as mountinfo does', () => {
    for (const [rel, want] of [
      ['with space', true],
      ['link', true],
      ['plain', false],
      ['missing', false],
      ['plain/missing/deeper', false],
    ] as const) {
      const p = join(work, rel);
      assert.equal(isMountPoint(p), want, rel);
      assert.equal(isListedMountPoint(p), want, `${rel} (mountinfo)`);
    }
    assert.equal(isMountPoint('/'), true);
  });

  it('readMountInfo(dir) parses only when a line names the dir', () => {
    const all = readMountInfo();
    assert.ok(all.some((m) => m.mountPoint === join(work, 'with space')));
    assert.deepEqual(readMountInfo(`${join(work, 'plain')}/`), []);
    const hit = readMountInfo(`${work}/`);
    assert.ok(hit.some((m) => m.mountPoint === join(work, 'with space')), 'the escaped space matched');
  });
});
