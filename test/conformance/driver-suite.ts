/**
 * The conformance suite every GraphDriver runs (test/conformance/<driver>.test.ts).
 * Layers are built from tars through the driver's own applyDiff and read back
 * through get(): what a container would see. Runs on a fresh tmpfs.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { GraphDriver } from '../../src/drivers/driver.js';
import { TsgraphError } from '../../src/errors.js';
import { getXattr } from '../../src/layer/xattr.js';
import { DeferredLowerDirs } from '../../src/drivers/overlay/lower-dir.js';
import { isMountPoint } from '../../src/mount/index.js';
import { type TarEntry, makeTar } from '../helpers/image-builder.js';
import { rawTar } from '../layer/raw-tar.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';

export interface ConformanceOptions {
  /** Why mount cases cannot run here (e.g. aufs absent); they are skipped with this reason. */
  skipMounts?: string | undefined;
  /** Prepares a home for the driver (a tmpfs dir by default; btrfs passes a loop fs). */
  home?: () => { dir: string; cleanup(): void };
}

const code = (c: string) => (e: unknown) => e instanceof TsgraphError && e.code === c;

export function driverConformance(label: string, make: (home: string) => GraphDriver, options: ConformanceOptions = {}): void {
  describe(`GraphDriver conformance: ${label}`, () => {
    let fsys: { dir: string; cleanup(): void } | Tmpfs;
    let driver: GraphDriver;
    let n = 0;
    const mountsBefore = mountPoints();
    const mountIt = options.skipMounts ? { skip: options.skipMounts } : {};

    before(() => {
      fsys = options.home ? options.home() : mountTmpfs('4g');
      driver = make(join(fsys.dir, 'home'));
    });
    after(() => {
      fsys?.cleanup();
      assert.deepEqual(mountPoints(), mountsBefore, 'every mount made by the suite is gone');
    });

    const id = (name: string) => `${name}-${++n}`;
    async function layer(name: string, parent: string | undefined, entries: TarEntry[] | Buffer): Promise<string> {
      const lid = id(name);
      await driver.create(lid, parent);
      await driver.applyDiff(lid, parent, Readable.from([Buffer.isBuffer(entries) ? entries : await makeTar(entries)]));
      return lid;
    }
    /** Mounts a container layer on `top`, runs `fn` on its root, then unmounts and removes it. */
    async function view<T>(top: string, fn: (root: string) => T | Promise<T>): Promise<T> {
      const c = id('ctr');
      await driver.create(c, top, { readWrite: true });
      const root = await driver.get(c);
      try {
        return await fn(root);
      } finally {
        await driver.put(c);
        await driver.remove(c);
      }
    }
    const read = (root: string, p: string) => fs.readFileSync(join(root, p), 'utf8');
    const has = (root: string, p: string) => fs.existsSync(join(root, p)) || !!fs.lstatSync(join(root, p), { throwIfNoEntry: false });

    it('creates chains; exists() tells; unknown parents are refused', async () => {
      const a = await layer('a', undefined, [{ path: 'a', content: 'A' }]);
      const b = await layer('b', a, [{ path: 'b', content: 'B' }]);
      assert.ok(driver.exists(a) && driver.exists(b));
      assert.equal(driver.exists('nope'), false);
      await assert.rejects(driver.create(id('x'), 'missing-parent'), code('TSG_NOT_FOUND'));
      await assert.rejects(driver.create(a, undefined), code('TSG_EXISTS'));
    });

    it('cleanup() removes what a crash mid-create or mid-remove left, and nothing else', async () => {
      const keep = await layer('survivor', undefined, [{ path: 'k', content: 'kept' }]);
      // What LayerDirs leaves when a process dies between staging and rename.
      const layersDir = (driver as unknown as { dirs: { layersDir: string } }).dirs.layersDir;
      for (const leftover of ['.staging-dead-0a0b0c0d', '.removing-gone-01020304']) {
        fs.mkdirSync(join(layersDir, leftover, 'payload'), { recursive: true });
        fs.writeFileSync(join(layersDir, leftover, 'payload', 'f'), 'x');
      }
      await driver.cleanup();
      assert.deepEqual(fs.readdirSync(layersDir).filter((n) => n.startsWith('.')), []);
      assert.ok(driver.exists(keep));
    });

    it('refuses to remove a layer while children exist', async () => {
      const a = await layer('base', undefined, [{ path: 'x', content: '1' }]);
      const b = await layer('kid', a, [{ path: 'y', content: '2' }]);
      await assert.rejects(driver.remove(a), code('TSG_IN_USE'));
      await driver.remove(b);
      await driver.remove(a);
      assert.equal(driver.exists(a), false);
    });

    it('counts get/put references and unmounts at zero', mountIt, async () => {
      const a = await layer('rc', undefined, [{ path: 'f', content: 'refcount' }]);
      const c = id('rc-ctr');
      await driver.create(c, a, { readWrite: true });
      const p1 = await driver.get(c);
      const p2 = await driver.get(c);
      assert.equal(p1, p2);
      await driver.put(c);
      assert.equal(read(p1, 'f'), 'refcount', 'still mounted after one put');
      await assert.rejects(driver.remove(c), code('TSG_IN_USE'));
      await driver.put(c);
      assert.equal(isMountPoint(p1), false, 'unmounted after the last put');
      await driver.remove(c);
      // put({ all }) releases every reference at once (what `tsgraph rm` does).
      const d = id('rc-all');
      await driver.create(d, a, { readWrite: true });
      const p3 = await driver.get(d);
      await driver.get(d);
      await driver.get(d);
      await driver.put(d, { all: true });
      assert.equal(isMountPoint(p3), false, 'every reference released');
      await driver.remove(d);
    });

    it('shows a file changed in an upper layer', mountIt, async () => {
      const a = await layer('chg1', undefined, [{ path: 'f', content: 'one' }, { path: 'keep', content: 'k' }]);
      const b = await layer('chg2', a, [{ path: 'f', content: 'two' }]);
      await view(b, (r) => {
        assert.equal(read(r, 'f'), 'two');
        assert.equal(read(r, 'keep'), 'k');
      });
    });

    it('hides a directory deleted in a later layer, and files deleted likewise', mountIt, async () => {
      const a = await layer('del1', undefined, [{ path: 'd/', type: 'directory' }, { path: 'd/x', content: 'x' }, { path: 'gone', content: 'g' }]);
      const b = await layer('del2', a, [{ path: '.wh.d', content: '' }, { path: '.wh.gone', content: '' }]);
      await view(b, (r) => {
        assert.equal(has(r, 'd'), false);
        assert.equal(has(r, 'gone'), false);
      });
    });

    it('makes an opaque directory hide lower content, whatever the tar order', mountIt, async () => {
      const a = await layer('opq1', undefined, [{ path: 'o/', type: 'directory' }, { path: 'o/a', content: 'a' }, { path: 'o/b', content: 'b' }]);
      const b = await layer('opq2', a, [{ path: 'o/c', content: 'c' }, { path: 'o/.wh..wh..opq', content: '' }]);
      await view(b, (r) => assert.deepEqual(fs.readdirSync(join(r, 'o')).sort(), ['c']));
    });

    // OCI: whiteouts and opaque markers in a layer act on lower layers only, whatever their tar order.
    it('a whiteout then a new directory of the same name hides the lower one\'s content', mountIt, async () => {
      const a = await layer('wo1', undefined, [{ path: 'x/', type: 'directory' }, { path: 'x/old', content: 'o' }, { path: 'y/', type: 'directory' }, { path: 'y/old', content: 'o' }]);
      const b = await layer('wo2', a, [
        { path: '.wh.x', content: '' },
        { path: 'x/', type: 'directory' },
        { path: 'x/new', content: 'n' },
        { path: '.wh.y', content: '' },
        { path: 'y/sub/f', content: 'implicit parent' },
      ]);
      await view(b, (r) => {
        assert.deepEqual(fs.readdirSync(join(r, 'x')), ['new']);
        assert.deepEqual(fs.readdirSync(join(r, 'y')), ['sub']);
      });
    });

    it('a parent directory the tar does not list keeps the lower layer\'s owner and mode', mountIt, async () => {
      const a = await layer('ip1', undefined, [
        { path: 'srv/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
        { path: 'srv/old', content: 'o' },
      ]);
      // No entry for srv/: the tar writes straight into it, as many image builders do.
      const b = await layer('ip2', a, [{ path: 'srv/new', content: 'n' }]);
      await view(b, (r) => {
        const st = fs.statSync(join(r, 'srv'));
        assert.equal(st.mode & 0o7777, 0o750);
        assert.deepEqual([st.uid, st.gid], [1000, 1001]);
        assert.deepEqual(fs.readdirSync(join(r, 'srv')).sort(), ['new', 'old']);
      });
    });

    // A parallel pull applies a layer while its parent is still being applied (store/layer-unpack.ts):
    // what it reads of the parent for implicit dirs is deferred and settled once the parent is complete.
    it('implicit parent dirs applied before the parent layer (parallel pull) end as in a sequential apply', mountIt, async () => {
      if (driver.capabilities.layout !== 'diff') return; // full-tree drivers apply in order
      const a = id('pp1');
      const b = id('pp2');
      await driver.create(a, undefined);
      await driver.create(b, a);
      const deferred = new DeferredLowerDirs(driver.layerPaths(b).own);
      await driver.applyDiff(b, a, Readable.from([await makeTar([{ path: 'srv/deep/new', content: 'n' }])]), { lowerDir: deferred.lowerDir, explicitDir: deferred.explicitDir });
      await driver.applyDiff(a, undefined, Readable.from([await makeTar([
        { path: 'srv/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
        { path: 'srv/deep/', type: 'directory', mode: 0o711, uid: 7, gid: 8 },
        { path: 'srv/old', content: 'o' },
      ])]));
      await deferred.settle(driver.layerPaths(b).parents);
      await view(b, (r) => {
        for (const [rel, mode, owner] of [['srv', 0o750, [1000, 1001]], ['srv/deep', 0o711, [7, 8]]] as const) {
          const st = fs.statSync(join(r, rel));
          assert.equal(st.mode & 0o7777, mode, rel);
          assert.deepEqual([st.uid, st.gid], owner, rel);
        }
        assert.deepEqual(fs.readdirSync(join(r, 'srv')).sort(), ['deep', 'old']);
      });
    });

    it('an opaque marker after the layer\'s own entries keeps them', mountIt, async () => {
      const a = await layer('ow1', undefined, [
        { path: 'd/', type: 'directory' },
        { path: 'd/sub/', type: 'directory' },
        { path: 'd/sub/old', content: 'o' },
        { path: 'd/other', content: 'o' },
        { path: 'z/', type: 'directory' },
        { path: 'z/old', content: 'o' },
      ]);
      const b = await layer('ow2', a, [
        { path: 'd/sub/new', content: 'n' },
        { path: 'd/.wh..wh..opq', content: '' },
        { path: 'z/', type: 'directory' },
        { path: 'z/mine', content: 'm' },
        { path: '.wh.z', content: '' },
      ]);
      await view(b, (r) => {
        assert.deepEqual(fs.readdirSync(join(r, 'd')), ['sub']);
        assert.deepEqual(fs.readdirSync(join(r, 'd/sub')), ['new']);
        assert.equal(read(r, 'd/sub/new'), 'n');
        assert.deepEqual(fs.readdirSync(join(r, 'z')), ['mine']);
      });
    });

    it('keeps file capabilities of a non-root file (owner, mode, then xattrs)', mountIt, async () => {
      // A v2 capability (cap_net_raw, cap_setfcap): binary, not UTF-8, so built as raw PAX.
      const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      const a = await layer('cap', undefined, rawTar([{ name: 'ping', data: 'elf', mode: 0o755, uid: 1000, gid: 1000, pax: [['SCHILY.xattr.security.capability', cap]] }]));
      await view(a, (r) => {
        const st = fs.statSync(join(r, 'ping'));
        assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1000, 0o755]);
        assert.deepEqual(getXattr(join(r, 'ping'), 'security.capability'), cap);
      });
    });

    it('keeps non-UTF-8 names apart', mountIt, async () => {
      const a = await layer('bytes', undefined, rawTar([
        { name: Buffer.from('caf\xe9', 'latin1'), data: 'e9' },
        { name: Buffer.from('caf\xe8', 'latin1'), data: 'e8' },
        { name: 'café', data: 'utf8' },
      ]));
      await view(a, (r) => {
        const names = (fs.readdirSync(r, { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('hex')).sort();
        assert.deepEqual(names, ['636166c3a9', '636166e8', '636166e9']);
      });
    });

    it('replaces a file with a directory and a directory with a file', mountIt, async () => {
      const a = await layer('swap1', undefined, [{ path: 'x', content: 'file' }, { path: 'y/', type: 'directory' }, { path: 'y/z', content: 'z' }]);
      const b = await layer('swap2', a, [{ path: 'x/', type: 'directory' }, { path: 'x/in', content: 'in' }, { path: '.wh.y', content: '' }, { path: 'y', content: 'now a file' }]);
      await view(b, (r) => {
        assert.equal(read(r, 'x/in'), 'in');
        assert.equal(read(r, 'y'), 'now a file');
      });
    });

    it('renames (whiteout + new name)', mountIt, async () => {
      const a = await layer('mv1', undefined, [{ path: 'old', content: 'data' }]);
      const b = await layer('mv2', a, [{ path: '.wh.old', content: '' }, { path: 'new', content: 'data' }]);
      await view(b, (r) => assert.deepEqual(fs.readdirSync(r).filter((e) => e === 'old' || e === 'new'), ['new']));
    });

    it('applies chmod/chown with setuid after chown', mountIt, async () => {
      const a = await layer('own1', undefined, [{ path: 'bin', content: 'x', mode: 0o755 }]);
      const b = await layer('own2', a, [{ path: 'bin', content: 'x', mode: 0o4755, uid: 1000, gid: 1001 }, { path: 'sticky/', type: 'directory', mode: 0o1777 }]);
      await view(b, (r) => {
        const st = fs.statSync(join(r, 'bin'));
        assert.equal(st.mode & 0o7777, 0o4755);
        assert.deepEqual([st.uid, st.gid], [1000, 1001]);
        assert.equal(fs.statSync(join(r, 'sticky')).mode & 0o7777, 0o1777);
      });
    });

    it('keeps hardlinks as one inode', mountIt, async () => {
      const a = await layer('hl', undefined, [{ path: 'h1', content: 'same' }, { path: 'h2', type: 'link', linkname: 'h1' }]);
      await view(a, (r) => {
        const s1 = fs.statSync(join(r, 'h1'));
        const s2 = fs.statSync(join(r, 'h2'));
        assert.equal(s1.ino, s2.ino);
        assert.equal(s1.nlink, 2);
      });
    });

    it('stores symlinks verbatim, relative and absolute', mountIt, async () => {
      const a = await layer('sym', undefined, [{ path: 'rel', type: 'symlink', linkname: '../x/y' }, { path: 'abs', type: 'symlink', linkname: '/etc/passwd' }]);
      await view(a, (r) => {
        assert.equal(fs.readlinkSync(join(r, 'rel')), '../x/y');
        assert.equal(fs.readlinkSync(join(r, 'abs')), '/etc/passwd');
      });
    });

    it('applies xattrs, and image-supplied overlay xattrs do not act', mountIt, async () => {
      const a = await layer('xa1', undefined, [{ path: 'd/', type: 'directory' }, { path: 'd/lower', content: 'l' }]);
      const b = await layer('xa2', a, [
        { path: 'f', content: 'x', pax: { 'SCHILY.xattr.user.test': 'hello' } },
        { path: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } },
      ]);
      await view(b, (r) => {
        assert.equal(getXattr(join(r, 'f'), 'user.test')?.toString(), 'hello');
        assert.equal(read(r, 'd/lower'), 'l', 'a forged opaque xattr must not hide lower files');
      });
    });

    for (const depth of [128, 500]) {
      it(`reads through a ${depth}-layer chain`, mountIt, async () => {
        let parent: string | undefined;
        for (let i = 0; i < depth; i++) {
          parent = await layer(`deep${depth}-${i}`, parent, [{ path: `f${i}`, content: `${i}` }, ...(i === depth - 1 ? [{ path: 'f0', content: 'top' }] : [])]);
        }
        await view(parent!, (r) => {
          assert.equal(read(r, 'f0'), 'top');
          assert.equal(read(r, 'f1'), '1');
          assert.equal(read(r, `f${depth - 1}`), `${depth - 1}`);
          assert.equal(fs.readdirSync(r).length, depth);
        });
      });
    }

    it('refuses a 501st layer clearly where the driver has a depth limit', async (t) => {
      const max = driver.capabilities.maxDepth;
      if (max === undefined) return t.skip(`${label} has no depth limit`);
      let parent: string | undefined;
      for (let i = 0; i < max; i++) {
        const lid = id(`lim${i}`);
        await driver.create(lid, parent);
        parent = lid;
      }
      await assert.rejects(driver.create(id('lim-over'), parent), (e: unknown) => {
        assert.ok(e instanceof TsgraphError && e.code === 'TSG_UNSUPPORTED', String(e));
        assert.match((e as Error).message, new RegExp(`at most ${max}`));
        return true;
      });
    });
  });
}
