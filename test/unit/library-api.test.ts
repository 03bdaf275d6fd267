/**
 * The library calls issue 10 adds for runtimes, against real stores on a
 * tmpfs (overlay and vfs): tag, history (empty steps aligned as docker does),
 * image / layer / container sizes, diskUsage (its reclaimable bytes are what
 * gc frees), diffStream (= what `tsgraph diff -o` writes; compressed; abort;
 * rm waits for it), exportContainer (the merged tree, never a host file a
 * container swaps in), bundles, login/logout, AsyncDisposable.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { BusyError, InterruptedError, NotFoundError, RegistryError, Store, UsageError, createBundle, removeBundle } from '../../src/index.js';
import { diffTar } from '../../src/store/differ.js';
import { MediaType } from '../../src/oci/media-types.js';
import { safeDirHooks } from '../../src/util/safe-dir.js';
import { type BuiltImage, blob, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');
const SECRET = 'HOST-SECRET-NOT-FOR-EXPORT-91c2';

/** This process's open fds on files below `dir`. */
function fdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) out.push(target);
    } catch {
      /* closed meanwhile (the readdir's own fd) */
    }
  }
  return out;
}

/** Lets a destroyed stream's teardown run (close events, then the walk's rejections). */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await tick();
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

interface Entry {
  name: string;
  type: string;
  linkname: string | undefined;
  data: Buffer;
}

async function entries(bytes: Buffer): Promise<Entry[]> {
  const out: Entry[] = [];
  const x = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    x.on('entry', (h, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: unknown) => {
        parts.push(c as Buffer);
      });
      stream.on('end', () => {
        out.push({ name: h.name.replace(/\/$/, ''), type: h.type ?? 'file', linkname: h.linkname ?? undefined, data: Buffer.concat(parts) });
        next();
      });
    });
    x.on('finish', resolve);
    x.on('error', reject);
  });
  x.end(bytes);
  await done;
  return out;
}

/** An OCI layout whose config history has empty steps between the layers (ENV, CMD). */
async function layoutWithHistory(dir: string): Promise<void> {
  const l0 = await makeLayer([{ path: 'base.txt', content: 'base\n' }]);
  const l1 = await makeLayer([{ path: 'app.txt', content: 'app layer\n' }]);
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: [l0.diffId, l1.diffId] },
    history: [
      { created: '2024-01-01T00:00:00Z', created_by: 'ADD base.txt' },
      { created: '2024-01-02T00:00:00Z', created_by: 'ENV A=b', empty_layer: true },
      { created: '2024-01-03T00:00:00Z', created_by: 'COPY app.txt', comment: 'the app' },
      { created: '2024-01-04T00:00:00Z', created_by: 'CMD ["sh"]', empty_layer: true },
    ],
  };
  const configBlob = blob(Buffer.from(JSON.stringify(config)), MediaType.OciConfig);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: configBlob.mediaType, digest: configBlob.digest, size: configBlob.size },
    layers: [l0, l1].map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const image: BuiltImage = { manifest: blob(Buffer.from(JSON.stringify(manifest)), MediaType.OciManifest), config: configBlob, layers: [l0, l1], platform: { os: 'linux', architecture: 'amd64' } };
  writeOciLayout(dir, [{ tag: 'v1', image }]);
}

afterEach(() => {
  safeDirHooks.beforeOpen = undefined;
  safeDirHooks.beforeRead = undefined;
});

describe('library API for runtimes', () => {
  const tmp = suiteTmpfs('1g');
  let n = 0;
  const fresh = async (driver: string): Promise<{ store: Store; base: string }> => {
    const base = join(tmp.dir, `case-${++n}`);
    fs.mkdirSync(base);
    const store = await Store.open({ root: join(base, 'root'), driver, configDirs: [join(base, 'cfg')], dockerConfig: join(base, 'docker', 'config.json') });
    return { store, base };
  };

  it('await using closes the store; close() is async and the store reconnects after it', async () => {
    let closed = 0;
    {
      await using store = (await fresh('vfs')).store;
      const close = store.close.bind(store);
      store.close = async () => {
        closed++;
        await close();
      };
      void store.registry; // a client to close
    }
    assert.equal(closed, 1, 'disposed at the end of the block');
    const { store } = await fresh('vfs');
    const first = store.registry;
    await store.close();
    assert.notEqual(store.registry, first, 'a new client after close');
    await store.close();
  });

  it('tag: another name for the same image; bad names and sources refused', async () => {
    await using store = (await fresh('vfs')).store;
    await store.pull(`oci:${FIXTURE}`);
    const t = await store.tag('busybox', 'registry.example/app:v1');
    assert.equal(t.name, 'registry.example/app:v1');
    const original = store.findImage('busybox');
    assert.equal(t.manifestDigest, original.manifestDigest);
    assert.deepEqual(store.listImages().map((i) => i.name), ['localhost/busybox:latest', 'registry.example/app:v1']);
    await assert.rejects(store.tag('busybox', 'Bad Name!'), UsageError);
    await assert.rejects(store.tag('nope', 'x:1'), NotFoundError);
  });

  it('history: newest first, empty steps without a layer, each layer with compressed and unpacked sizes; imageSize sums them', async () => {
    const { store, base } = await fresh('overlay');
    try {
      await layoutWithHistory(join(base, 'layout'));
      const { name } = await store.pull(`oci:${join(base, 'layout')}:v1`, { unpack: false });
      const notUnpacked = await store.imageSize(name);
      assert.equal(notUnpacked.unpackedBytes, undefined, 'not unpacked yet: unknown, not 0');
      assert.ok(notUnpacked.layers.every((l) => l.unpackedBytes === undefined));
      await store.removeContainer((await store.mount(name, { name: 'u' })).container.name); // unpacks
      const h = await store.history(name);
      assert.deepEqual(h.map((e) => [e.createdBy, e.emptyLayer, e.layer !== undefined]), [
        ['CMD ["sh"]', true, false],
        ['COPY app.txt', false, true],
        ['ENV A=b', true, false],
        ['ADD base.txt', false, true],
      ]);
      assert.equal(h[1]!.comment, 'the app');
      const image = store.findImage(name);
      assert.equal(h[1]!.layer!.digest, image.layers[1]!.digest);
      assert.equal(h[3]!.layer!.digest, image.layers[0]!.digest);
      assert.equal(h[1]!.layer!.compressedBytes, image.layers[1]!.size);
      assert.equal(h[1]!.layer!.unpackedBytes, 'app layer\n'.length);
      const size = await store.imageSize(name);
      assert.equal(size.compressedBytes, image.size);
      assert.equal(size.unpackedBytes, 'base\n'.length + 'app layer\n'.length);
    } finally {
      await store.close();
    }
  });

  for (const driver of ['overlay', 'vfs']) {
    describe(driver, () => {
      it('containerSize counts the regular files a container changed, hardlinks once; diskUsage agrees with gc', async () => {
        await using store = (await fresh(driver)).store;
        await store.pull(`oci:${FIXTURE}`);
        const { path } = await store.mount('busybox', { name: 'sized' });
        fs.writeFileSync(join(path, 'big'), Buffer.alloc(10_000, 1));
        fs.linkSync(join(path, 'big'), join(path, 'big-link'));
        fs.writeFileSync(join(path, 'etc/motd'), 'hello\n');
        fs.symlinkSync('/etc/shadow', join(path, 'shadow-link')); // a symlink counts 0, never followed
        const size = await store.containerSize('sized');
        assert.equal(size.bytes, 10_000 + 6);
        let du = await store.diskUsage();
        assert.equal(du.images.count, 1);
        assert.equal(du.images.active, 1);
        assert.equal(du.images.reclaimableBytes, 0, 'every image is used');
        assert.equal(du.containers.count, 1);
        assert.equal(du.containers.mounted, 1);
        assert.equal(du.containers.bytes, size.bytes);
        assert.equal(du.containers.reclaimableBytes, 0, 'a mounted container is not reclaimable');
        assert.equal(du.reclaimableBytes, 0);
        assert.ok(du.content.bytes > 1_000_000 && du.layers.bytes > 1_000_000);
        // Unused: the container goes, then the image name: everything is reclaimable, and gc frees exactly that.
        await store.removeContainer('sized');
        du = await store.diskUsage();
        assert.equal(du.images.active, 0);
        assert.equal(du.images.reclaimableBytes, du.layers.bytes + du.content.bytes, 'all of it, once the image is removed');
        await store.removeImage('busybox');
        const steps: string[] = [];
        du = await store.diskUsage({ onProgress: (p) => steps.push(p.step) });
        assert.deepEqual(steps, ['records', 'content', 'gc']);
        const gc = await store.gc();
        assert.equal(du.reclaimableBytes, gc.bytes);
        assert.equal(du.layers.reclaimableBytes + du.content.reclaimableBytes, gc.bytes);
        du = await store.diskUsage();
        assert.equal(du.reclaimableBytes, 0);
        assert.equal(du.layers.count, 0);
      });

      it("diffStream is `tsgraph diff -o`'s tar (and its gzip); progress; abort; rm waits for an open stream", async () => {
        await using store = (await fresh(driver)).store;
        await store.pull(`oci:${FIXTURE}`);
        const { path } = await store.mount('busybox', { name: 'd' });
        fs.writeFileSync(join(path, 'added.txt'), 'added\n');
        fs.rmSync(join(path, 'bin/wc'));
        const events: Array<{ bytes: number; done: boolean }> = [];
        const plain = await collect(await store.diffStream('d', { onProgress: (p) => events.push(p) }));
        assert.deepEqual(events.at(-1), { bytes: plain.length, done: true });
        const cli = await collect(diffTar(await store.diff('d')));
        assert.ok(plain.equals(cli), 'the same bytes as diff -o');
        const names = (await entries(plain)).map((e) => e.name);
        assert.ok(names.includes('added.txt') && names.includes('bin/.wh.wc'), names.join(' '));
        const gz = await collect(await store.diffStream('d', { compression: 'gzip' }));
        assert.ok(gunzipSync(gz).equals(plain));

        const aborted = new AbortController();
        aborted.abort();
        await assert.rejects(store.diffStream('d', { signal: aborted.signal }), (e: unknown) => e instanceof InterruptedError && e.code === 'TSG_ABORTED');
        const midway = new AbortController();
        const s = await store.diffStream('d', { signal: midway.signal });
        midway.abort();
        await assert.rejects(collect(s), (e: unknown) => e instanceof InterruptedError && e.code === 'TSG_ABORTED');
        await settle();
        assert.deepEqual(fdsUnder(store.root), [], 'an aborted stream closes every fd it opened in the container');
        (await store.exportContainer('d')).destroy();
        (await store.diffStream('d')).destroy();
        await settle();
        assert.deepEqual(fdsUnder(store.root), [], 'so does one destroyed unread');

        // An open stream holds the container: rm waits until it is closed.
        const open = await store.diffStream('d');
        let removed = false;
        const rm = store.removeContainer('d').then(() => (removed = true));
        for (let i = 0; i < 20; i++) await tick();
        await sleep(200);
        assert.equal(removed, false, 'rm waits for the stream');
        open.destroy();
        await rm;
        assert.deepEqual(store.listContainers(), []);
      });

      for (const when of ['beforeOpen', 'beforeRead'] as const) {
        it(`exportContainer: the merged tree, flat; a file swapped for a symlink to the host is never read through (${when})`, async () => {
          const { store, base } = await fresh(driver);
          try {
            const secret = join(base, 'host-secret');
            fs.writeFileSync(secret, SECRET);
            await store.pull(`oci:${FIXTURE}`);
            const { path } = await store.mount('busybox', { name: 'x' });
            fs.writeFileSync(join(path, 'mine.txt'), 'innocent\n');
            fs.rmSync(join(path, 'bin/wc'));
            fs.symlinkSync(secret, join(path, 'evil'));
            let swapped = false;
            let seen = 0;
            safeDirHooks[when] = (_root, rel) => {
              // The listing opens each entry once before the tar does: swap before the tar's own open (or read).
              if (rel !== 'mine.txt' || swapped || ++seen < (when === 'beforeOpen' ? 2 : 1)) return;
              swapped = true;
              fs.rmSync(join(path, 'mine.txt'));
              fs.symlinkSync(secret, join(path, 'mine.txt'));
            };
            const bytes = await collect(await store.exportContainer('x'));
            assert.ok(swapped, 'the container swapped the file mid-export');
            assert.ok(!bytes.includes(SECRET), 'no host content in the export');
            const all = await entries(bytes);
            const byName = new Map(all.map((e) => [e.name, e]));
            assert.ok(byName.has('bin/sh') && byName.has('etc'), 'the image tree is there');
            assert.equal(byName.has('bin/wc'), false, 'a deleted file is not');
            assert.ok(!all.some((e) => e.name.includes('.wh.')), 'flat: no whiteouts');
            assert.equal(byName.get('evil')?.type, 'symlink');
            assert.equal(byName.get('evil')?.linkname, secret);
            const mine = byName.get('mine.txt')!;
            if (when === 'beforeRead') assert.equal(mine.data.toString(), 'innocent\n');
            else assert.equal(mine.type, 'symlink');
            await store.umount('x');
            // The export's own mount reference is gone: the container unmounts with the last umount.
            assert.equal(store.listContainers()[0]!.mounted, false);
            await store.removeContainer('x');
          } finally {
            await store.close();
          }
        });
      }
    });
  }

  it('bundles: made with config.json and a marker, a taken dir refused (TSG_EXISTS, a BusyError), removed again', async () => {
    const { store, base } = await fresh('overlay');
    try {
      await store.pull(`oci:${FIXTURE}`);
      const dir = join(base, 'bundle');
      const b = await createBundle(store, 'busybox', dir, { name: 'b1', args: ['true'] });
      const spec = JSON.parse(fs.readFileSync(join(dir, 'config.json'), 'utf8'));
      assert.equal(spec.root.path, b.rootfs);
      assert.deepEqual(spec.process.args, ['true']);
      await assert.rejects(createBundle(store, 'busybox', dir), (e: unknown) => e instanceof BusyError && e.code === 'TSG_EXISTS');
      assert.equal(await removeBundle(store, dir), 'b1');
      assert.equal(fs.existsSync(dir), false);
      assert.deepEqual(store.listContainers(), []);
      // A marker that is a symlink (to any file) is not read.
      fs.mkdirSync(dir);
      fs.writeFileSync(join(base, 'fake'), JSON.stringify({ container: 'b1' }));
      fs.symlinkSync(join(base, 'fake'), join(dir, '.tsgraph-bundle'));
      await assert.rejects(removeBundle(store, dir), NotFoundError);
    } finally {
      await store.close();
    }
  });

  it("login / logout through the store use its docker config; an unreachable registry writes nothing", async () => {
    const { store, base } = await fresh('vfs');
    try {
      const config = join(base, 'docker', 'config.json');
      fs.mkdirSync(join(base, 'docker'));
      fs.writeFileSync(config, JSON.stringify({ auths: { '127.0.0.1:5999': { auth: Buffer.from('u:p').toString('base64') } }, other: 1 }));
      assert.equal(await store.logout('127.0.0.1:5999'), true);
      assert.deepEqual(JSON.parse(fs.readFileSync(config, 'utf8')), { auths: {}, other: 1 });
      assert.equal(await store.logout('127.0.0.1:5999'), false);
      const before = fs.readFileSync(config, 'utf8');
      // Nothing listens on port 1: one attempt, refused, nothing written.
      await using once = await Store.open({ root: join(base, 'root'), driver: 'vfs', dockerConfig: config, retry: { attempts: 1 } });
      await assert.rejects(once.login('127.0.0.1:1', { username: 'u', password: 'p' }), RegistryError);
      assert.equal(fs.readFileSync(config, 'utf8'), before);
    } finally {
      await store.close();
    }
  });
});
