import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { BtrfsDriver } from '../../src/drivers/btrfs/btrfs.js';
import { nativeFs } from '../../src/native.js';
import { type LoopFs, makeBtrfs } from '../helpers/btrfs.js';
import { makeTar } from '../helpers/image-builder.js';
import { driverConformance } from './driver-suite.js';

driverConformance('btrfs', (home) => new BtrfsDriver(home), { home: () => makeBtrfs('2g') });

describe('btrfs specifics', () => {
  let loop: LoopFs;
  let driver: BtrfsDriver;
  before(() => {
    loop = makeBtrfs('1g');
    driver = new BtrfsDriver(join(loop.dir, 'home'));
  });
  after(() => loop?.cleanup());

  it('image layers are read-only subvolumes, container layers writable snapshots', async () => {
    await driver.create('base', undefined);
    await driver.applyDiff('base', undefined, Readable.from([await makeTar([{ path: 'f', content: 'x' }])]));
    await driver.create('ctr', 'base', { readWrite: true });
    const n = nativeFs();
    assert.equal(n.btrfsIsReadOnly(driver.rootDir('base')), true);
    assert.equal(n.btrfsIsReadOnly(driver.rootDir('ctr')), false);
    assert.throws(() => fs.writeFileSync(join(driver.rootDir('base'), 'g'), 'no'), { code: 'EROFS' });
    assert.equal(fs.readFileSync(join(driver.rootDir('ctr'), 'f'), 'utf8'), 'x');
  });

  it('removes a layer with subvolumes nested inside it', async () => {
    const n = nativeFs();
    n.btrfsSubvolCreate(driver.rootDir('ctr'), 'nested');
    n.btrfsSubvolCreate(join(driver.rootDir('ctr'), 'nested'), 'deeper');
    fs.writeFileSync(join(driver.rootDir('ctr'), 'nested/deeper/file'), 'y');
    await driver.remove('ctr');
    await driver.remove('base');
    assert.deepEqual(fs.readdirSync(join(loop.dir, 'home', 'layers')), []);
  });
});
