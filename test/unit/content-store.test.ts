import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContentStore } from '../../src/content/store.js';
import { sha256 } from '../../src/digest.js';
import { TsgraphError } from '../../src/errors.js';
import { acquireLock } from '../../src/store/lock.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

describe('content store', () => {
  let dir: string;
  let store: ContentStore;
  before(() => {
    dir = makeTempDir();
    store = new ContentStore(dir);
  });
  after(() => removeDir(dir));

  const data = Buffer.from('hello content store '.repeat(1000));
  const digest = sha256(data);

  it('resumes an ingest at its offset and commits a read-only verified blob', async () => {
    const w1 = await store.writer('ref-a', { digest, size: data.length });
    assert.equal(w1.offset, 0);
    w1.write(data.subarray(0, 5000));
    w1.close();
    assert.equal(store.has(digest), false);
    const w2 = await store.writer('ref-a', { digest, size: data.length });
    assert.equal(w2.offset, 5000);
    w2.write(data.subarray(5000));
    assert.deepEqual(w2.commit(), { digest, size: data.length });
    assert.equal(fs.statSync(store.blobPath(digest)).mode & 0o777, 0o444);
    assert.deepEqual(fs.readFileSync(store.blobPath(digest)), data);
    assert.deepEqual(store.ingests(), []);
    assert.deepEqual([...store.walk()].map((b) => b.digest), [digest]);
  });

  it('a wrong digest stores nothing and removes the ingest', async () => {
    const other = Buffer.from('other bytes');
    const w = await store.writer('ref-b', { digest: sha256('not these'), size: other.length });
    w.write(other);
    assert.throws(() => w.commit(), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_DIGEST_MISMATCH');
    assert.equal(store.has(sha256('not these')), false);
    assert.deepEqual(store.ingests(), []);
  });

  it('a byte past the expected size fails at once', async () => {
    const w = await store.writer('ref-c', { digest: sha256('abc'), size: 3 });
    assert.throws(() => w.write(Buffer.from('abcd')), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_SIZE_MISMATCH');
    assert.deepEqual(store.ingests(), []);
  });

  it('an ingest for a different target under the same ref starts over', async () => {
    const w = await store.writer('ref-d', { digest: sha256('first'), size: 5 });
    w.write(Buffer.from('fir'));
    w.close();
    const w2 = await store.writer('ref-d', { digest: sha256('second'), size: 6 });
    assert.equal(w2.offset, 0);
    w2.write(Buffer.from('second'));
    w2.commit();
    assert.ok(store.has(sha256('second')));
  });

  it('a lock held by a killed process is free again (flock dies with its holder)', async () => {
    const lockDir = join(dir, 'locks');
    const script = `
      import { acquireLock } from ${JSON.stringify(join(REPO_ROOT, 'src/store/lock.ts'))};
      await acquireLock(${JSON.stringify(lockDir)}, 'held');
      console.log('locked');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d) => String(d).includes('locked') && resolve());
      child.on('exit', () => reject(new Error('child exited early')));
    });
    await assert.rejects(acquireLock(lockDir, 'held', { timeoutMs: 100 }), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_LOCKED');
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const lock = await acquireLock(lockDir, 'held', { timeoutMs: 2000 });
    lock.release();
  });
});
