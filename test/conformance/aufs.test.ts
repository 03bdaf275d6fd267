/**
 * aufs: the conformance suite runs every case that needs no aufs mount; the
 * mount cases are skipped with the reason where the kernel has no aufs (as
 * here) and run wherever /proc/filesystems lists it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AufsDriver } from '../../src/drivers/aufs/aufs.js';
import { kernelHas } from '../../src/drivers/probe.js';
import { TsgraphError } from '../../src/errors.js';
import { aufsChanges } from '../../src/layer/changes.js';
import { makeTar } from '../helpers/image-builder.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';
import { driverConformance } from './driver-suite.js';

const hasAufs = kernelHas('aufs');
driverConformance('aufs', (home) => new AufsDriver(home), {
  skipMounts: hasAufs ? undefined : 'aufs is not in this kernel (/proc/filesystems has no aufs)',
});

describe('aufs layout, whiteouts, native diff and the missing module', () => {
  let tmp: Tmpfs;
  let driver: AufsDriver;
  before(() => {
    tmp = mountTmpfs('256m');
    driver = new AufsDriver(join(tmp.dir, 'aufs'));
  });
  after(() => tmp?.cleanup());

  it("keeps docker's layout and stores whiteouts as .wh. files", async () => {
    await driver.create('l1', undefined);
    await driver.applyDiff('l1', undefined, Readable.from([await makeTar([{ path: 'a', content: '1' }, { path: 'd/', type: 'directory' }, { path: 'd/x', content: 'x' }, { path: 'gone', content: 'g' }])]));
    await driver.create('l2', 'l1');
    await driver.applyDiff('l2', 'l1', Readable.from([await makeTar([{ path: '.wh.gone', content: '' }, { path: 'd/.wh..wh..opq', content: '' }, { path: 'd/y', content: 'y' }, { path: 'a', content: '2' }, { path: 'new', content: 'n' }])]));
    await driver.create('ctr', 'l2', { readWrite: true });
    assert.ok(fs.existsSync(join(tmp.dir, 'aufs/diff/l2/.wh.gone')));
    assert.ok(fs.existsSync(join(tmp.dir, 'aufs/diff/l2/d/.wh..wh..opq')));
    assert.equal(fs.readFileSync(join(tmp.dir, 'aufs/layers/ctr'), 'utf8'), 'l2\nl1\n', "docker's parent list, topmost first");
    const spec = driver.mountSpec('ctr');
    assert.deepEqual(spec.type === 'aufs' && spec.branches.map((b) => b.mode), ['rw', 'ro+wh', 'ro+wh']);
  });

  it('lists changes natively from the diff dir, skipping aufs internals', () => {
    fs.mkdirSync(join(tmp.dir, 'aufs/diff/l2/.wh..wh.plnk'));
    const changes = aufsChanges(driver.diffDir('l2'), [driver.diffDir('l1')]).map((c) => `${c.kind} ${c.path}${c.opaque ? ' opaque' : ''}`);
    assert.deepEqual(changes, ['C /a', 'C /d opaque', 'A /d/y', 'D /gone', 'A /new']);
  });

  it(hasAufs ? 'mounts' : 'refuses to mount with TSG_UNSUPPORTED naming the missing module', async () => {
    if (hasAufs) {
      const root = await driver.get('ctr');
      assert.equal(fs.readFileSync(join(root, 'a'), 'utf8'), '2');
      await driver.put('ctr');
      return;
    }
    await assert.rejects(driver.get('ctr'), (e: unknown) => {
      assert.ok(e instanceof TsgraphError && e.code === 'TSG_UNSUPPORTED');
      assert.match((e as Error).message, /aufs module/);
      return true;
    });
    assert.equal(driver.dirs.meta('ctr').mounts, 0, 'a failed mount takes no reference');
    const st = await driver.status();
    assert.equal(st.probes[0]!.ok, false);
    assert.match(st.probes[0]!.detail, /load the `aufs` module/);
  });
});
