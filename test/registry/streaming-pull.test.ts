/**
 * The streaming pull (store/layer-unpack.ts): each layer's download is teed
 * into the content store and into its unpack, overlay layers apply in
 * parallel. Real registry, fault proxy in front, stores on a tmpfs, the
 * library API (progress events let a test look inside a running pull).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hexOf } from '../../src/digest.js';
import { TsgraphError } from '../../src/errors.js';
import { chainIds } from '../../src/layer/chain.js';
import { RegistryClient } from '../../src/registry/client.js';
import { Store } from '../../src/store/store.js';
import { MARK_MODE } from '../../src/drivers/overlay/lower-dir.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type BuiltImage, type TarEntry, layerFromTar, makeImage, makeLayer, makeTar, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';
import { listTree } from '../helpers/tree.js';

const blobPath = (digest: string) => new RegExp(`/blobs/${digest}$`);
const code = (c: string) => (e: unknown) => e instanceof TsgraphError && e.code === c;

/** Many small files (so extraction visibly runs while the blob still arrives) under a 0750 1000:1001 dir. */
function baseEntries(): TarEntry[] {
  const entries: TarEntry[] = [
    { path: 'srv/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
    { path: 'srv/deep/', type: 'directory', mode: 0o711, uid: 7, gid: 8 },
    { path: 'etc/', type: 'directory' },
    { path: 'etc/gone', content: 'deleted above' },
  ];
  // 6 MB: well past any batch a decompressor gathers before its first output.
  for (let i = 0; i < 1500; i++) entries.push({ path: `srv/f${i}`, content: randomBytes(4000) });
  return entries;
}

describe('streaming pull', () => {
  const tmp = suiteTmpfs('2g');
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let image: BuiltImage;
  let zstdImage: BuiltImage;
  let n = 0;

  before(async () => {
    reg = await startRegistry('plain');
    proxy = await startFaultProxy({ upstream: reg.host });
    client = new RegistryClient();
    const base = await makeLayer(baseEntries(), 'gzip');
    // No entries for srv/ or srv/deep/: implicit parents that must keep the lower's owner, mode and time.
    const top = await makeLayer([{ path: 'srv/deep/new', content: 'n' }, { path: 'srv/added', content: 'a' }, { path: 'etc/.wh.gone', content: '' }], 'gzip');
    const third = await makeLayer([{ path: 'srv/deep/x/y', content: 'implicit chain' }, { path: 'big.bin', content: randomBytes(1 << 20) }], 'gzip');
    image = makeImage({ layers: [base, top, third] });
    zstdImage = makeImage({ layers: [await makeLayer(baseEntries(), 'zstd'), await makeLayer([{ path: 'srv/deep/z', content: 'z' }], 'zstd')] });
    await pushImages(client, reg.host, 'stream/img', 'v1', [image]);
    await pushImages(client, reg.host, 'stream/zimg', 'v1', [zstdImage]);
  });
  after(async () => {
    client?.close();
    await proxy?.stop();
    await reg?.stop();
  });

  const open = (driver: string) => Store.open({ root: join(tmp.dir, `root-${n++}`), driver, insecureRegistries: [proxy.host, reg.host] });

  async function treeOf(store: Store, ref: string): Promise<string[]> {
    const m = await store.mount(ref, { name: `t${n++}` });
    try {
      return listTree(m.path);
    } finally {
      await store.removeContainer(m.container.name);
    }
  }

  const diffDir = (store: Store, img: BuiltImage, i: number) =>
    join(store.root, 'overlay', 'layers', hexOf(chainIds(img.layers.map((l) => l.diffId))[i]!), 'diff');

  it('parallel (overlay, 4 jobs) = one layer at a time = vfs, gzip and zstd', async () => {
    for (const [ref] of [[`${proxy.host}/stream/img:v1`], [`${proxy.host}/stream/zimg:v1`]] as const) {
      const trees: string[][] = [];
      for (const [driver, jobs] of [['overlay', 4], ['overlay', 1], ['vfs', 4]] as const) {
        const store = await open(driver);
        try {
          const r = await store.pull(ref, { jobs });
          assert.equal(r.layersUnpacked, r.image.layers.length);
          trees.push(await treeOf(store, r.image.name));
        } finally {
          await store.close();
        }
      }
      assert.deepEqual(trees[0], trees[1], `${ref}: parallel overlay = sequential overlay`);
      assert.deepEqual(trees[0], trees[2], `${ref}: overlay = vfs`);
    }
  });

  it('extracts a layer while its download is still running, and applies a child layer in parallel with an implicit parent dir settled from the lower', async () => {
    const store = await open('overlay');
    const base = image.layers[0]!;
    // The base layer arrives slowly; the others at full speed.
    proxy.rules.push({ method: 'GET', path: blobPath(base.digest), fault: { kind: 'throttle', chunk: 64 << 10, delayMs: 20 } });
    let extractedEarly = false;
    let childMarked = false;
    try {
      await store.pull(`${proxy.host}/stream/img:v1`, {
        jobs: 4,
        onProgress: (e) => {
          if (e.type !== 'blob-progress' || e.digest !== base.digest || e.current >= e.size) return;
          const own = diffDir(store, image, 0);
          if (fs.existsSync(join(own, 'srv')) && fs.readdirSync(join(own, 'srv')).length > 1) extractedEarly = true;
          // The child is applied meanwhile: its implicit srv/ carries the marker until the base completes.
          const child = fs.statSync(join(diffDir(store, image, 1), 'srv'), { throwIfNoEntry: false });
          if (child && (child.mode & 0o7777) === MARK_MODE && fs.existsSync(join(diffDir(store, image, 1), 'srv/added'))) childMarked = true;
        },
      });
    } finally {
      proxy.rules.length = 0;
    }
    assert.ok(extractedEarly, 'files of the base layer were on disk before its blob was complete');
    assert.ok(childMarked, 'the child layer was applied while its parent was still downloading');
    // After the pull, the child's implicit dirs are what a sequential apply gives: the lower's attributes.
    for (const [rel, mode, owner] of [['srv', 0o750, [1000, 1001]], ['srv/deep', 0o711, [7, 8]]] as const) {
      const lower = fs.statSync(join(diffDir(store, image, 0), rel));
      const mine = fs.statSync(join(diffDir(store, image, 1), rel));
      assert.equal(mine.mode & 0o7777, mode, rel);
      assert.deepEqual([mine.uid, mine.gid], owner, rel);
      assert.equal(mine.mtimeMs, lower.mtimeMs, `${rel} keeps the lower's time`);
    }
    const m = await store.mount(`${proxy.host}/stream/img:v1`, { name: 'implicit' });
    try {
      assert.equal(fs.statSync(join(m.path, 'srv')).mode & 0o7777, 0o750);
      assert.equal(fs.existsSync(join(m.path, 'etc/gone')), false);
      assert.equal(fs.readFileSync(join(m.path, 'srv/deep/x/y'), 'utf8'), 'implicit chain');
    } finally {
      await store.removeContainer('implicit');
      await store.close();
    }
  });

  it('a blob whose digest is wrong while its tar is valid (and matches the diffId): nothing stored, no image, no layer', async () => {
    // Two incompressible layers of one size: the registry "serves" B for A's digest.
    const a = layerFromTar(await makeTar([{ path: 'payload', content: randomBytes(200_000) }]), 'none');
    const b = layerFromTar(await makeTar([{ path: 'payload', content: randomBytes(200_000) }]), 'none');
    assert.equal(a.size, b.size);
    const lying = makeImage({ layers: [a], diffIds: [b.diffId] });
    await pushImages(client, reg.host, 'stream/lying', 'v1', [lying]);
    proxy.rules.push({
      method: 'GET',
      path: blobPath(a.digest),
      fault: { kind: 'respond', status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': String(b.size) }, body: b.bytes },
    });
    for (const driver of ['overlay', 'vfs']) {
      const store = await open(driver);
      try {
        await assert.rejects(store.pull(`${proxy.host}/stream/lying:v1`), code('TSG_DIGEST_MISMATCH'));
        assert.equal(store.content.has(a.digest), false, 'no blob');
        assert.deepEqual(store.listImages(), [], 'no image');
        assert.deepEqual(store.layers.list(), [], 'no layer record, complete or not');
        assert.deepEqual(fs.readdirSync(join(store.root, driver, 'layers')).filter((e) => !e.startsWith('.')), [], 'no layer dir');
        assert.deepEqual(store.content.ingests(), [], 'no ingest: the tampered bytes are gone');
      } finally {
        await store.close();
      }
    }
    proxy.rules.length = 0;
  });

  it('a connection dropped mid-layer resumes with Range and the layer is right', async () => {
    const big = image.layers[2]!;
    const reference = await open('overlay');
    const want = await (async () => {
      try {
        await reference.pull(`${reg.host}/stream/img:v1`);
        return await treeOf(reference, `${reg.host}/stream/img:v1`);
      } finally {
        reference.close();
      }
    })();
    const store = await open('overlay');
    proxy.rules.push({ method: 'GET', path: blobPath(big.digest), fault: { kind: 'drop', after: Math.floor(big.size / 2) }, times: 1 });
    proxy.log.length = 0;
    try {
      const r = await store.pull(`${proxy.host}/stream/img:v1`, { jobs: 4 });
      const ranged = proxy.log.filter((l) => l.path.endsWith(big.digest) && l.range);
      assert.equal(ranged.length, 1, 'resumed once, with Range');
      assert.deepEqual(await treeOf(store, r.image.name), want.map((l) => l));
    } finally {
      proxy.rules.length = 0;
      await store.close();
    }
  });

  it('a source that ignores Range on the retry: the layer starts over and is right', async () => {
    const big = image.layers[2]!;
    const store = await open('overlay');
    const vfs = await open('vfs');
    proxy.rules.push(
      { method: 'GET', path: blobPath(big.digest), fault: { kind: 'drop', after: Math.floor(big.size / 2) }, times: 1 },
      {
        method: 'GET',
        path: blobPath(big.digest),
        fault: { kind: 'respond', status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': String(big.size) }, body: big.bytes },
        times: 1,
      },
    );
    try {
      const r = await store.pull(`${proxy.host}/stream/img:v1`, { jobs: 4 });
      proxy.rules.length = 0;
      await vfs.pull(`${reg.host}/stream/img:v1`);
      assert.deepEqual(await treeOf(store, r.image.name), await treeOf(vfs, `${reg.host}/stream/img:v1`));
      assert.ok(store.layers.list().every((l) => !l.incomplete));
    } finally {
      proxy.rules.length = 0;
      await store.close();
      vfs.close();
    }
  });

  it('an abort mid-pull leaves a resumable ingest and no layer; the next pull completes from it', async () => {
    const big = image.layers[2]!;
    const store = await open('overlay');
    proxy.rules.push({ method: 'GET', path: blobPath(big.digest), fault: { kind: 'throttle', chunk: 32 << 10, delayMs: 20 } });
    const ac = new AbortController();
    try {
      await assert.rejects(
        store.pull(`${proxy.host}/stream/img:v1`, {
          jobs: 4,
          signal: ac.signal,
          onProgress: (e) => {
            if (e.type === 'blob-progress' && e.digest === big.digest && e.current > big.size / 3) ac.abort();
          },
        }),
        code('TSG_ABORTED'),
      );
      proxy.rules.length = 0;
      assert.deepEqual(store.listImages(), []);
      assert.ok(store.layers.list().every((l) => !l.incomplete), 'no half layer left behind');
      const partial = store.content.ingests().find((i) => i.expected === big.digest);
      assert.ok(partial && partial.offset > 0, 'the partial blob is kept');
      proxy.log.length = 0;
      const r = await store.pull(`${proxy.host}/stream/img:v1`, { jobs: 4 });
      assert.ok(r.bytesReused >= partial.offset, 'resumed from the ingest');
      assert.ok(proxy.log.some((l) => l.path.endsWith(big.digest) && l.range === `bytes=${partial.offset}-`), 'asked for the rest only');
      assert.equal(fs.readFileSync(join(diffDir(store, image, 2), 'srv/deep/x/y'), 'utf8'), 'implicit chain');
    } finally {
      proxy.rules.length = 0;
      await store.close();
    }
  });

  it('a re-pull of a present image is answered from its record: no blob request, nothing written', async () => {
    const store = await open('overlay');
    try {
      await store.pull(`${proxy.host}/stream/img:v1`);
      const before = fs.statSync(join(store.root, 'meta')).mtimeMs;
      proxy.log.length = 0;
      const r = await store.pull(`${proxy.host}/stream/img:v1`);
      assert.equal(r.blobsFetched, 0);
      assert.equal(r.layersUnpacked, 0);
      const requests = proxy.log.filter((l) => l.path !== '/v2/');
      assert.equal(requests.length, 1, `one manifest request: ${JSON.stringify(proxy.log)}`);
      assert.match(requests[0]!.path, /\/manifests\//);
      assert.equal(fs.statSync(join(store.root, 'meta')).mtimeMs, before);
      // A missing layer is not "present": the pull unpacks it again.
      const top = chainIds(image.layers.map((l) => l.diffId)).at(-1)!;
      await store.driver.remove(hexOf(top));
      const again = await store.pull(`${proxy.host}/stream/img:v1`);
      assert.equal(again.layersUnpacked, 1);
    } finally {
      await store.close();
    }
  });
});
