/**
 * The gc lock is fair (issue 8, defect 16): an exclusive waiter is not
 * starved by shared holders that keep coming, since new shared holders queue
 * behind it; its wait is bounded and ends in a clear TSG_LOCKED. flock locks
 * belong to open files, so two acquisitions in one process contend like two
 * processes do.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TsgraphError } from '../../src/errors.js';
import { type FileLock, acquireFairLock, tryLockDir } from '../../src/store/lock.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

describe('fair readers/writer lock', () => {
  const dir = makeTempDir('tsgraph-fairlock-');
  after(() => removeDir(dir));

  it('a waiting writer goes before readers that come after it', async () => {
    const order: string[] = [];
    const r1 = await acquireFairLock(dir, 'gc', { shared: true });
    let writerWaits!: () => void;
    const writerWaiting = new Promise<void>((resolve) => (writerWaits = resolve));
    const w = acquireFairLock(dir, 'gc', { timeoutMs: 10_000, onWait: () => writerWaits() }).then((l) => (order.push('writer'), l));
    await writerWaiting;
    let readerWaits!: () => void;
    const readerWaiting = new Promise<void>((resolve) => (readerWaits = resolve));
    const r2 = acquireFairLock(dir, 'gc', { shared: true, timeoutMs: 10_000, onWait: () => readerWaits() }).then((l) => (order.push('reader'), l));
    // Before the fix the second reader got in at once, next to the first, and the writer waited on.
    await readerWaiting;
    assert.deepEqual(order, []);
    r1.release();
    const wl: FileLock = await w;
    assert.deepEqual(order, ['writer'], 'the writer got in once the first reader left');
    wl.release();
    (await r2).release();
    assert.deepEqual(order, ['writer', 'reader']);
  });

  it('a writer waits a bounded time and says why; readers get in again after it gave up', async () => {
    const r1 = await acquireFairLock(dir, 'gc2', { shared: true });
    await assert.rejects(
      acquireFairLock(dir, 'gc2', { timeoutMs: 300, what: 'the gc lock of /x' }),
      (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_LOCKED' && /the gc lock of \/x is held by another tsgraph process \(waited 300 ms\)/.test(e.message),
    );
    const r2 = await acquireFairLock(dir, 'gc2', { shared: true, timeoutMs: 0 });
    r2.release();
    r1.release();
  });

  it('readers share the lock with each other', async () => {
    const a = await acquireFairLock(dir, 'gc3', { shared: true, timeoutMs: 0 });
    const b = await acquireFairLock(dir, 'gc3', { shared: true, timeoutMs: 0 });
    a.release();
    b.release();
  });

  it('tryLockDir: a directory flock held by one holder is refused to another, and freed on release', () => {
    const d = join(dir, 'staging');
    fs.mkdirSync(d);
    const held = tryLockDir(d);
    assert.ok(held);
    assert.equal(tryLockDir(d), undefined);
    assert.equal(tryLockDir(d, { shared: true }), undefined);
    held.release();
    const again = tryLockDir(d, { shared: true });
    assert.ok(again);
    again.release();
    assert.equal(tryLockDir(join(dir, 'missing')), undefined);
  });
});
