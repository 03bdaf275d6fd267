/**
 * Reading what a container controls, on the host side (issue 8, defects 1,
 * 2, 7, 9):
 *  - commit/diff never read through a symlink the container swaps in while
 *    they run (the swap is made deterministic with util/safe-dir.ts's hooks,
 *    at the two points where a by-path reader would be fooled: after the
 *    entry was listed, and after it was stat'ed but before it is read);
 *  - copyTree keeps file capabilities of files owned by someone else;
 *  - names are bytes: `caf\xe9` and `caf\xe8` stay two files;
 *  - the bundle's user lookup reads only small regular files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { hexOf } from '../../src/digest.js';
import { BtrfsDriver } from '../../src/drivers/btrfs/btrfs.js';
import { VfsDriver } from '../../src/drivers/vfs/vfs.js';
import { chainIds } from '../../src/layer/chain.js';
import { formatChanges } from '../../src/layer/changes.js';
import { parsePaxRecords } from '../../src/layer/pax.js';
import { getXattr, setXattr } from '../../src/layer/xattr.js';
import { nativeFs } from '../../src/native.js';
import { diffTar } from '../../src/store/differ.js';
import { Store } from '../../src/store/store.js';
import { byteString, bytesOf } from '../../src/util/byte-path.js';
import { copyTree } from '../../src/util/copy-tree.js';
import { safeDirHooks } from '../../src/util/safe-dir.js';
import { hasBtrfsTools, makeBtrfs } from '../helpers/btrfs.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');
const SECRET = 'TOP-SECRET-HOST-CONTENT-7f3a';
// VFS_CAP_REVISION_2, cap_net_raw in permitted: what `setcap cap_net_raw+p` writes.
const CAPABILITY = Buffer.from('0000000200200000000000000000000000000000', 'hex');

interface RawEntry {
  name: string; // byte string
  type: string;
  linkname: string; // byte string
  data: Buffer;
}

/** A tar read block by block: names from the raw PAX path/linkpath records when present, bytes kept. */
function rawEntries(tar: Buffer): RawEntry[] {
  const out: RawEntry[] = [];
  let pax = new Map<string, Buffer>();
  const field = (h: Buffer, off: number, len: number) => {
    const f = h.subarray(off, off + len);
    const end = f.indexOf(0);
    return f.subarray(0, end < 0 ? len : end);
  };
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const size = parseInt(field(h, 124, 12).toString('latin1').trim() || '0', 8);
    const type = String.fromCharCode(h[156]!);
    const data = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      pax = new Map([...pax, ...parsePaxRecords(data)]);
      continue;
    }
    const prefix = field(h, 345, 155);
    const ustarName = prefix.length ? Buffer.concat([prefix, Buffer.from('/'), field(h, 0, 100)]) : field(h, 0, 100);
    const name = byteString(pax.get('path') ?? ustarName).replace(/\/$/, '');
    const linkname = byteString(pax.get('linkpath') ?? field(h, 157, 100));
    out.push({ name, type, linkname, data: Buffer.from(data) });
    pax = new Map();
  }
  return out;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Every regular file below `dir` (no symlink followed) whose bytes contain `needle`. */
function filesHolding(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: Buffer) => {
    for (const name of fs.readdirSync(d, { encoding: 'buffer' }) as Buffer[]) {
      const p = Buffer.concat([d, Buffer.from('/'), name]);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && fs.readFileSync(p).includes(needle)) hits.push(p.toString('latin1'));
    }
  };
  walk(Buffer.from(dir));
  return hits;
}

/**
 * What a process in the container does: replace `file` (a path in its root)
 * by a symlink to the host's `target`. Armed on the `nth` time the walk
 * reaches `rel` at hook point `when`.
 */
function swapWhen(when: 'beforeOpen' | 'beforeRead', rel: string, file: string, target: string, nth = 1): () => boolean {
  let seen = 0;
  let swapped = false;
  safeDirHooks[when] = (_root, r) => {
    if (r !== rel || swapped || ++seen < nth) return;
    swapped = true;
    fs.rmSync(file);
    fs.symlinkSync(target, file);
  };
  return () => swapped;
}

afterEach(() => {
  safeDirHooks.beforeOpen = undefined;
  safeDirHooks.beforeRead = undefined;
});

describe('reading container content on the host side', () => {
  const tmp = suiteTmpfs('1g');
  let n = 0;

  async function openStore(driver: string): Promise<{ store: Store; secret: string }> {
    const base = join(tmp.dir, `case-${++n}`);
    fs.mkdirSync(base);
    const secret = join(base, 'host-secret');
    fs.writeFileSync(secret, SECRET);
    const store = await Store.open({ root: join(base, 'root'), driver, configDirs: [join(base, 'cfg')] });
    await store.pull(`oci:${FIXTURE}`);
    return { store, secret };
  }

  for (const driver of ['overlay', 'vfs']) {
    for (const when of ['beforeRead', 'beforeOpen'] as const) {
      it(`${driver}: commit never reads a host file the container swaps in (${when})`, async () => {
        const { store, secret } = await openStore(driver);
        const { path } = await store.mount('busybox', { name: 'swapper' });
        try {
          fs.mkdirSync(join(path, 'data'));
          fs.writeFileSync(join(path, 'data/file'), 'innocent\n');
          // beforeOpen: the changes walk opens data/file once; swap before the generator's open.
          const swapped = swapWhen(when, 'data/file', join(path, 'data/file'), secret, when === 'beforeOpen' ? 2 : 1);
          const result = await store.commit('swapper', 'committed:1', { compress: 'gzip' });
          assert.ok(swapped(), 'the container swapped the file mid-commit');
          const tar = gunzipSync(store.content.readBlob(result.layer.digest));
          assert.ok(!tar.includes(SECRET), 'the host file is not in the layer blob');
          const entry = rawEntries(tar).find((e) => e.name === 'data/file');
          if (when === 'beforeRead') {
            // Opened before the swap: the file as it was, from its own fd.
            assert.equal(entry?.type, '0');
            assert.equal(entry?.data.toString(), 'innocent\n');
          } else {
            // Swapped before it was opened: exported as what it now is, a symlink, not read through.
            assert.equal(entry?.type, '2');
            assert.equal(entry?.linkname, secret);
          }
          // Nor in the stored image layer.
          const chain = chainIds(result.image.layers.map((l) => l.diffId));
          const own = store.driver.layerPaths(hexOf(chain.at(-1)!)).own;
          assert.deepEqual(filesHolding(own, SECRET), []);
        } finally {
          safeDirHooks.beforeOpen = safeDirHooks.beforeRead = undefined;
          await store.removeContainer('swapper');
        }
      });
    }
  }

  for (const when of ['beforeRead', 'beforeOpen'] as const) {
    it(`copyTree copies what the source holds, never a host file swapped in (${when})`, () => {
      const base = join(tmp.dir, `copy-${++n}`);
      fs.mkdirSync(join(base, 'src/a'), { recursive: true });
      fs.writeFileSync(join(base, 'secret'), SECRET);
      fs.writeFileSync(join(base, 'src/a/file'), 'innocent\n');
      const swapped = swapWhen(when, 'a/file', join(base, 'src/a/file'), join(base, 'secret'));
      copyTree(join(base, 'src'), join(base, 'dst'));
      assert.ok(swapped());
      assert.deepEqual(filesHolding(join(base, 'dst'), SECRET), []);
      const st = fs.lstatSync(join(base, 'dst/a/file'));
      if (when === 'beforeRead') assert.equal(fs.readFileSync(join(base, 'dst/a/file'), 'utf8'), 'innocent\n');
      else assert.equal(st.isSymbolicLink() && fs.readlinkSync(join(base, 'dst/a/file')), join(base, 'secret'));
    });
  }

  it('copyTree keeps file capabilities of a file owned by a non-root user (vfs create copies the parent)', async () => {
    const home = join(tmp.dir, `vfs-${++n}`);
    const vfs = new VfsDriver(home);
    await vfs.create('base', undefined);
    const ping = join(vfs.rootDir('base'), 'ping');
    fs.writeFileSync(ping, 'ping');
    fs.chownSync(ping, 1000, 1001);
    fs.chmodSync(ping, 0o755);
    setXattr(ping, 'security.capability', CAPABILITY);
    setXattr(ping, 'user.note', 'kept');
    await vfs.create('child', 'base');
    const copy = join(vfs.rootDir('child'), 'ping');
    const st = fs.lstatSync(copy);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1001);
    assert.equal(st.mode & 0o7777, 0o755);
    assert.deepEqual(getXattr(copy, 'security.capability'), CAPABILITY, 'the capability survives the chown');
    assert.equal(getXattr(copy, 'user.note')?.toString(), 'kept');
    await vfs.remove('child');
    await vfs.remove('base');
  });

  it('overlay commit keeps the capability of a non-root file, in the blob and the stored layer', async () => {
    const { store } = await openStore('overlay');
    const { path } = await store.mount('busybox', { name: 'caps' });
    try {
      const f = join(path, 'pinger');
      fs.writeFileSync(f, 'ping');
      fs.chownSync(f, 1000, 1000);
      setXattr(f, 'security.capability', CAPABILITY);
      const result = await store.commit('caps', 'caps:1', { compress: 'none' });
      const entry = rawEntries(store.content.readBlob(result.layer.digest)).find((e) => e.name === 'pinger');
      assert.ok(entry, 'pinger is in the layer tar');
      const chain = chainIds(result.image.layers.map((l) => l.diffId));
      const stored = join(store.driver.layerPaths(hexOf(chain.at(-1)!)).own, 'pinger');
      assert.equal(fs.lstatSync(stored).uid, 1000);
      assert.deepEqual(getXattr(stored, 'security.capability'), CAPABILITY);
    } finally {
      await store.removeContainer('caps');
    }
  });

  for (const driver of ['overlay', 'vfs']) {
    it(`${driver}: latin-1 names made in a container stay two files in diff and in the layer tar`, async () => {
      const { store } = await openStore(driver);
      const { path } = await store.mount('busybox', { name: 'latin' });
      const e9 = byteString(Buffer.from('caf\xe9', 'latin1'));
      const e8 = byteString(Buffer.from('caf\xe8', 'latin1'));
      try {
        fs.writeFileSync(Buffer.concat([Buffer.from(`${path}/`), bytesOf(e9)]), 'e9');
        fs.writeFileSync(Buffer.concat([Buffer.from(`${path}/`), bytesOf(e8)]), 'e8');
        fs.symlinkSync(bytesOf(e9), Buffer.concat([Buffer.from(`${path}/`), bytesOf('link\xe7')]));
        const diff = await store.diff('latin');
        await diff.release();
        // Nothing of the image is reported deleted (vfs used to see `caf\uFFFD`, find no such file, and say D).
        assert.deepEqual(diff.changes.filter((c) => c.kind === 'D'), []);
        assert.deepEqual(
          diff.changes.map((c) => `${c.kind} ${c.path}`),
          [`A /${e8}`, `A /${e9}`, 'A /link\xe7'],
        );
        assert.equal(formatChanges(diff.changes), 'A /caf\\xe8\nA /caf\\xe9\nA /link\\xe7\n');
        const entries = rawEntries(await collect(diffTar(await store.diff('latin'))));
        const byName = new Map(entries.map((e) => [e.name, e]));
        assert.equal(byName.get(e9)?.data.toString(), 'e9');
        assert.equal(byName.get(e8)?.data.toString(), 'e8');
        assert.equal(byName.get('link\xe7')?.linkname, e9);
        if (driver === 'overlay') {
          // The stored image layer keeps both names byte-exact.
          const result = await store.commit('latin', 'latin:1', { compress: 'none' });
          const chain = chainIds(result.image.layers.map((l) => l.diffId));
          const own = store.driver.layerPaths(hexOf(chain.at(-1)!)).own;
          const names = (fs.readdirSync(own, { encoding: 'buffer' }) as Buffer[]).map(byteString).sort();
          assert.deepEqual(names, [e8, e9, 'link\xe7']);
        }
      } finally {
        await store.removeContainer('latin');
      }
    });
  }

  it("bundle's user lookup reads only small regular files: FIFO, /dev/zero, symlink, huge file", () => {
    const base = join(tmp.dir, `users-${++n}`);
    const root = (name: string) => {
      const r = join(base, name);
      fs.mkdirSync(join(r, 'etc'), { recursive: true });
      return r;
    };
    fs.mkdirSync(base);
    fs.writeFileSync(join(base, 'host-passwd'), 'app:x:4242:4242::/:/bin/sh\n');
    const cases: Record<string, { root: string; user: string }> = {
      fifo: { root: root('fifo'), user: 'app' },
      zero: { root: root('zero'), user: 'app' },
      symlink: { root: root('symlink'), user: 'app' },
      huge: { root: root('huge'), user: 'app' },
      groupFifo: { root: root('groupFifo'), user: 'app:staff' },
      fine: { root: root('fine'), user: 'app:staff' },
    };
    spawnSync('mkfifo', [join(cases.fifo!.root, 'etc/passwd')]);
    spawnSync('mknod', [join(cases.zero!.root, 'etc/passwd'), 'c', '1', '5']);
    fs.symlinkSync(join(base, 'host-passwd'), join(cases.symlink!.root, 'etc/passwd'));
    fs.writeFileSync(join(cases.huge!.root, 'etc/passwd'), `app:x:1:1::/:/bin/sh\n${'#'.repeat(2 << 20)}\n`);
    fs.writeFileSync(join(cases.groupFifo!.root, 'etc/passwd'), 'app:x:1234:99::/:/bin/sh\n');
    spawnSync('mkfifo', [join(cases.groupFifo!.root, 'etc/group')]);
    fs.writeFileSync(join(cases.fine!.root, 'etc/passwd'), 'app:x:1234:99::/:/bin/sh\n');
    fs.writeFileSync(join(cases.fine!.root, 'etc/group'), 'staff:x:50:\n');
    // In a child with a deadline: the old code blocked forever on the FIFO and read /dev/zero until memory ran out.
    const script = `
      import { resolveUser } from ${JSON.stringify(join(REPO_ROOT, 'src/runtime/spec.ts'))};
      const cases = ${JSON.stringify(cases)};
      const out = {};
      for (const [k, c] of Object.entries(cases)) {
        try { out[k] = resolveUser(c.root, c.user); } catch (e) { out[k] = { code: e.code, message: e.message }; }
      }
      process.stdout.write(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 1 << 20,
    });
    assert.equal(r.error, undefined, `the lookup finished (${String(r.error)})`);
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, { code?: string; uid?: number; gid?: number }>;
    assert.equal(got.fifo?.code, 'TSG_UNSAFE_PATH');
    assert.equal(got.zero?.code, 'TSG_UNSAFE_PATH');
    assert.equal(got.huge?.code, 'TSG_UNSAFE_PATH');
    assert.equal(got.groupFifo?.code, 'TSG_UNSAFE_PATH');
    assert.equal(got.symlink?.code, 'TSG_USAGE', 'a symlinked /etc/passwd counts as absent, never followed');
    assert.deepEqual(got.fine, { uid: 1234, gid: 50 });
  });
});

describe('btrfs: removing a container layer reads its tree as bytes, by dir fds', { skip: hasBtrfsTools() ? false : 'mkfs.btrfs missing' }, () => {
  it('removes a layer holding latin-1 names and a nested subvolume under one, and never walks a symlink', async () => {
    const loop = makeBtrfs('1g');
    try {
      const driver = new BtrfsDriver(join(loop.dir, 'home'));
      await driver.create('base', undefined);
      await driver.create('ctr', 'base', { readWrite: true });
      const root = driver.rootDir('ctr');
      const latin = Buffer.concat([Buffer.from(`${root}/`), Buffer.from('caf\xe9', 'latin1')]);
      fs.mkdirSync(latin);
      fs.writeFileSync(Buffer.concat([latin, Buffer.from('/f')]), 'x');
      nativeFs().btrfsSubvolCreate(root, 'nested');
      nativeFs().btrfsSubvolCreate(join(root, 'nested'), Buffer.from('sub\xe8', 'latin1') as unknown as string);
      // A host subvolume a symlink in the container points at: the walk must not go there.
      nativeFs().btrfsSubvolCreate(loop.dir, 'host-subvol');
      fs.writeFileSync(join(loop.dir, 'host-subvol/keep'), 'host');
      fs.symlinkSync(loop.dir, join(root, 'to-host'));
      await driver.remove('ctr');
      await driver.remove('base');
      assert.deepEqual(fs.readdirSync(join(loop.dir, 'home', 'layers')), []);
      assert.equal(fs.readFileSync(join(loop.dir, 'host-subvol/keep'), 'utf8'), 'host');
    } finally {
      loop.cleanup();
    }
  });
});
