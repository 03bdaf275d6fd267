/**
 * The library calls behind save/load: `saveImages(store, refs, writable)` and
 * `loadArchive(store, readable)` from src/index.ts, on plain streams (vfs
 * stores: no mounts). Save → load between two stores keeps the image; an
 * unknown name fails before a byte is written; an abort mid-load stores nothing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Store, TsgraphError, loadArchive, saveImages } from '../../src/index.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { storedBlobs, storedImages, storedIngests } from '../helpers/sandbox.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Spool } from '../../src/archive/spool.js';
import { planDocker } from '../../src/archive/docker-archive.js';
import { makeImage, makeLayer, makeTar } from '../helpers/image-builder.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

function collector(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    }),
    bytes: () => Buffer.concat(chunks),
  };
}

describe('saveImages / loadArchive (library)', () => {
  let dir: string;
  let source: Store;
  before(async () => {
    dir = makeTempDir('tsgraph-archive-lib-');
    source = await Store.open({ root: join(dir, 'source'), driver: 'vfs' });
    await source.pull(`oci:${FIXTURE}`);
  });
  after(async () => {
    await source?.close();
    removeDir(dir);
  });

  for (const format of ['docker-archive', 'oci-archive'] as const) {
    it(`${format}: what one store saves, another loads (same config, same layers)`, async () => {
      const out = collector();
      const saved = await saveImages(source, ['localhost/busybox:latest'], out.stream, { format });
      assert.equal(saved.bytes, out.bytes().length);
      await using target = await Store.open({ root: join(dir, `target-${format}`), driver: 'vfs' });
      const loaded = await loadArchive(target, Readable.from([out.bytes()]));
      assert.equal(loaded.format, format);
      const original = source.findImage('localhost/busybox:latest');
      const copy = target.findImage('localhost/busybox:latest');
      assert.equal(copy.configDigest, original.configDigest);
      assert.deepEqual(copy.layers.map((l) => l.diffId), original.layers.map((l) => l.diffId));
      if (format === 'oci-archive') assert.equal(copy.manifestDigest, original.manifestDigest);
      // Saved twice, the same bytes.
      const again = collector();
      await saveImages(source, ['localhost/busybox:latest'], again.stream, { format });
      assert.ok(again.bytes().equals(out.bytes()));
    });
  }

  it('an unknown name fails with TSG_NOT_FOUND before a byte is written', async () => {
    const out = collector();
    await assert.rejects(saveImages(source, ['localhost/busybox:latest', 'nosuch:1'], out.stream), (e: TsgraphError) => e.code === 'TSG_NOT_FOUND');
    assert.equal(out.bytes().length, 0);
  });

  it('only files used as layers are decompressed (a gzip bomb no manifest names costs its bytes, not its output)', async () => {
    // A layer over 4 MiB (read back from its temp ingest, not memory) and an unused 256 MiB-of-zeros gzip.
    const layer = await makeLayer([{ path: 'noise', content: randomBytes(5 << 20) }], 'gzip');
    const image = makeImage({ layers: [layer] });
    const hexOf = (d: string) => d.slice(7);
    const bytes = await makeTar([
      { path: 'bomb.gz', content: gzipSync(Buffer.alloc(256 << 20), { level: 1 }) },
      { path: `${hexOf(image.config.digest)}.json`, content: image.config.bytes },
      { path: 'layer.tar.gz', content: layer.bytes },
      { path: 'manifest.json', content: JSON.stringify([{ Config: `${hexOf(image.config.digest)}.json`, RepoTags: ['lazy:1'], Layers: ['layer.tar.gz'] }]) },
    ]);
    await using target = await Store.open({ root: join(dir, 'lazy'), driver: 'vfs' });
    const spool = await Spool.read(target.content, Readable.from([bytes]));
    try {
      const bomb = spool.get('bomb.gz')!;
      const used = spool.get('layer.tar.gz')!;
      assert.equal(bomb.compression, 'gzip');
      assert.equal(bomb.diffId, undefined, 'spooling hashes, never inflates');
      assert.equal(used.diffId, undefined);
      await planDocker(spool);
      assert.equal(await used.diffId, layer.diffId, 'the layer was decompressed and its diffId checked');
      assert.equal(bomb.diffId, undefined, 'the unused file was not');
    } finally {
      spool.discard();
    }
    const loaded = await loadArchive(target, Readable.from([bytes]));
    assert.equal(loaded.images[0]!.configDigest, image.config.digest);
    assert.deepEqual(storedIngests(join(dir, 'lazy')), []);
  });

  it('an abort while the archive streams in stores nothing', async () => {
    const out = collector();
    await saveImages(source, ['localhost/busybox:latest'], out.stream);
    const bytes = out.bytes();
    const root = join(dir, 'aborted');
    await using target = await Store.open({ root, driver: 'vfs' });
    const input = new PassThrough();
    const ac = new AbortController();
    input.write(bytes.subarray(0, bytes.length >> 1)); // half: the big layer is being spooled
    const load = loadArchive(target, input, { signal: ac.signal });
    // Abort once the spool holds a temp ingest (bounded wait).
    const spooling = () => storedIngests(root).some((n) => n.startsWith('tmp-'));
    for (let i = 0; i < 400 && !spooling(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(spooling(), 'the load is spooling');
    ac.abort();
    await assert.rejects(load, (e: TsgraphError) => e.code === 'TSG_ABORTED');
    input.destroy();
    assert.deepEqual([storedBlobs(root), storedImages(root), storedIngests(root)], [[], [], []]);
  });
});
