/**
 * Issue 8 defect 12: GNU sparse files. PAX sparse (tar --sparse --posix,
 * versions 0.0, 0.1 and 1.0), made by GNU tar on this machine, unpack to the
 * real file with its holes (not `GNUSparseFile.N/name` holding the map);
 * old-style GNU sparse (type 'S') is refused naming the entry; a lying map is
 * refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { TsgraphError } from '../../src/errors.js';
import { applyTar } from '../../src/layer/apply.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { naiveFormat, overlayFormat } from '../../src/layer/whiteout.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';
import { rawTar } from './raw-tar.js';

async function apply(root: string, bytes: Buffer): Promise<void> {
  const { tar, tap, done } = openLayerTar(Readable.from([bytes]), 'none');
  done.catch(() => {});
  try {
    await applyTar(root, tar, { format: overlayFormat, pax: tap.pax });
    await done;
  } finally {
    tar.destroy();
  }
}

const isCode = (code: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof TsgraphError, String(e));
  assert.equal(e.code, code, e.message);
  if (re) assert.match(e.message, re);
  return true;
};

describe('GNU sparse files', () => {
  let tmp: Tmpfs;
  let src: string;
  let original: Buffer;
  let n = 0;
  const fresh = () => {
    const root = join(tmp.dir, `r${++n}`);
    fs.mkdirSync(root);
    return root;
  };
  before(() => {
    tmp = mountTmpfs('256m');
    src = join(tmp.dir, 'src');
    fs.mkdirSync(join(src, 'dir'), { recursive: true });
    // 2 MiB apparent, three data runs, a hole at the start and at the end.
    const f = join(src, 'dir', 'sparse\xe9');
    fs.writeFileSync(f, '');
    fs.truncateSync(f, 2 << 20);
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.alloc(5000, 'a'), 0, 5000, 300_000);
    fs.writeSync(fd, Buffer.from('middle'), 0, 6, 1 << 20);
    fs.writeSync(fd, Buffer.alloc(70_000, 'z'), 0, 70_000, 1_500_000);
    fs.closeSync(fd);
    original = fs.readFileSync(f);
  });
  after(() => tmp?.cleanup());

  const gnuTar = (...flags: string[]) => execFileSync('tar', ['-C', src, ...flags, '-cf', '-', 'dir'], { maxBuffer: 64 << 20 });

  for (const version of ['0.0', '0.1', '1.0']) {
    it(`rebuilds a PAX sparse ${version} file with its holes`, async () => {
      const bytes = gnuTar('--sparse', `--sparse-version=${version}`, '--posix');
      assert.ok(bytes.includes(Buffer.from('GNU.sparse.')), 'GNU tar really wrote a sparse entry');
      const root = fresh();
      await apply(root, bytes);
      assert.deepEqual(fs.readdirSync(join(root, 'dir')), ['sparse\xe9']);
      const out = join(root, 'dir', 'sparse\xe9');
      assert.ok(fs.readFileSync(out).equals(original), 'same bytes as the original');
      const st = fs.statSync(out);
      assert.ok(st.blocks * 512 < 200_000, `holes kept (${st.blocks} blocks)`);
    });
  }

  it('the default of tar --sparse --posix (1.0) matches what GNU tar itself extracts', async () => {
    const root = fresh();
    await apply(root, gnuTar('--sparse', '--posix'));
    const gnu = fresh();
    execFileSync('tar', ['-C', gnu, '-xf', '-'], { input: gnuTar('--sparse', '--posix') });
    assert.ok(fs.readFileSync(join(root, 'dir', 'sparse\xe9')).equals(fs.readFileSync(join(gnu, 'dir', 'sparse\xe9'))));
  });

  it('refuses old-style GNU sparse (type S) naming the entry', async () => {
    const root = fresh();
    await assert.rejects(apply(root, gnuTar('--sparse', '--format=gnu')), isCode('TSG_UNSUPPORTED', /dir\/sparseé.*type S/));
    assert.deepEqual(fs.readdirSync(root).filter((e) => e !== 'dir'), []);
  });

  it('refuses a map that does not match the data', async () => {
    const lying = [
      [['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.size', '100'], ['GNU.sparse.map', '0,10,50,20']],
      [['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.size', '100'], ['GNU.sparse.map', '0,15,10,5']],
      [['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.size', '10'], ['GNU.sparse.map', '5,20']],
      [['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.size', '100'], ['GNU.sparse.map', '50,10,0,10']],
      [['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.size', 'x'], ['GNU.sparse.map', '0,20']],
    ] as Array<Array<[string, string]>>;
    for (const pax of lying) {
      await assert.rejects(apply(fresh(), rawTar([{ name: 'f', data: Buffer.alloc(20, 1), pax }])), isCode('TSG_INVALID_LAYER'), JSON.stringify(pax));
    }
    const v1 = Buffer.concat([Buffer.from('2\n0\n10\n'), Buffer.alloc(512 - 7), Buffer.alloc(10, 1)]);
    await assert.rejects(
      apply(fresh(), rawTar([{ name: 'f', data: v1, pax: [['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '100']] }])),
      isCode('TSG_INVALID_LAYER'),
    );
    await assert.rejects(
      apply(fresh(), rawTar([{ name: 'f', data: 'x', pax: [['GNU.sparse.major', '2'], ['GNU.sparse.minor', '0']] }])),
      isCode('TSG_UNSUPPORTED'),
    );
  });

  it('a naive-format apply (vfs/btrfs) rebuilds it too', async () => {
    const root = fresh();
    const { tar, tap, done } = openLayerTar(Readable.from([gnuTar('--sparse', '--posix')]), 'none');
    await applyTar(root, tar, { format: naiveFormat, pax: tap.pax });
    await done;
    assert.ok(fs.readFileSync(join(root, 'dir', 'sparse\xe9')).equals(original));
  });
});
