/**
 * A container process cannot forge owners into a diff or commit of a root
 * store (review of issue 10, F1): user.containers.override_stat is honoured
 * only in a single-id rootless namespace, on files owned by that id.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import tar from 'tar-stream';
import { Store } from '../../src/index.js';
import { setXattr } from '../../src/layer/xattr.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

async function owners(stream: Readable): Promise<Map<string, { uid: number; gid: number; mode: number }>> {
  const out = new Map<string, { uid: number; gid: number; mode: number }>();
  const ex = tar.extract();
  ex.on('entry', (h, body, next) => {
    out.set(h.name, { uid: h.uid ?? -1, gid: h.gid ?? -1, mode: h.mode ?? 0 });
    body.on('end', next).resume();
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve).on('error', reject);
    stream.on('error', reject).pipe(ex);
  });
  return out;
}

test('override_stat set by a container user does not change the owner in a root store diff', async (t) => {
  const tmp = mountTmpfs('256m');
  const store = await Store.open({ root: join(tmp.dir, 'root'), driver: 'vfs' }).catch((err: unknown) => {
    tmp.cleanup();
    throw err;
  });
  // One hook, in order: the store lets go of the tmpfs before it is unmounted and removed.
  t.after(async () => {
    await store.removeContainer('x').catch(() => {});
    await store.close();
    tmp.cleanup();
  });
  await store.pull(`oci:${join(REPO_ROOT, 'fixtures', 'busybox')}`);
  const { path } = await store.mount('localhost/busybox:latest', { name: 'x' });
  const file = join(path, 'rootsh');
  fs.writeFileSync(file, 'not really a shell');
  fs.chownSync(file, 1000, 1000);
  fs.chmodSync(file, 0o4755);
  setXattr(file, 'user.containers.override_stat', '0:0:4755:file');
  const entries = await owners(await store.diffStream('x'));
  const e = entries.get('rootsh');
  assert.ok(e, [...entries.keys()].join(' '));
  assert.equal(e.uid, 1000);
  assert.equal(e.gid, 1000);
});
