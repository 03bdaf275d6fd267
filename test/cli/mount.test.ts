/**
 * `tsgraph mount` end to end: runc runs a container on the mount (acceptance
 * 4), a lying diffId registers nothing (5), a crash mid-unpack is repaired by
 * the next open, read-only mounts, mount references, shared layers unpacked
 * once — for overlay and vfs. Every test file leaves mountinfo as it found it (6).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { sha256 } from '../../src/digest.js';
import { REPO_ROOT, parseJsonOutput, runCli, spawnCli } from '../helpers/cli.js';
import { layerFromTar, makeImage, makeLayer, makeTar, writeOciLayout } from '../helpers/image-builder.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';
import { type LoopFs, makeBtrfs } from '../helpers/btrfs.js';

const run = promisify(execFile);
const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

describe('tsgraph mount', () => {
  let tmpfs: Tmpfs;
  let btrfs: LoopFs;
  const mountsBefore = mountPoints();
  before(() => {
    tmpfs = mountTmpfs('2g');
    btrfs = makeBtrfs('2g');
  });
  after(() => {
    btrfs?.cleanup();
    tmpfs?.cleanup();
    assert.deepEqual(mountPoints(), mountsBefore, 'no mount left behind');
  });

  for (const driver of ['overlay', 'vfs', 'btrfs']) {
    describe(`${driver} driver`, () => {
      // btrfs needs its root on btrfs; the others get a tmpfs.
      const tmp = { get dir() { return driver === 'btrfs' ? btrfs.dir : tmpfs.dir; } };
      const env = () => ({ TSGRAPH_ROOT: join(tmp.dir, `root-${driver}`), TSGRAPH_DRIVER: driver });

      it('runc runs `sh -c "echo hello"` on the mount; a file written in the container lands in the container layer', async () => {
        const pull = await runCli(['pull', `oci:${FIXTURE}`, '--json'], env());
        assert.equal(pull.code, 0, pull.stderr);
        const m = await runCli(['mount', 'busybox', '--name', 'runc-ctr', '--json'], env());
        assert.equal(m.code, 0, m.stderr);
        const { path } = parseJsonOutput<{ path: string }>(m);
        const bundle = join(tmp.dir, `bundle-${driver}`);
        fs.mkdirSync(bundle);
        await run('runc', ['spec', '-b', bundle]);
        const config = JSON.parse(fs.readFileSync(join(bundle, 'config.json'), 'utf8'));
        config.root = { path, readonly: false };
        config.process.terminal = false;
        config.process.args = ['sh', '-c', 'echo hello; echo from-container > /written-by-runc'];
        fs.writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
        const id = `tsgraph-test-${randomBytes(4).toString('hex')}`;
        try {
          const { stdout } = await run('runc', ['run', '-b', bundle, id], { timeout: 60_000 });
          assert.equal(stdout, 'hello\n');
        } finally {
          spawnSync('runc', ['delete', '-f', id]);
        }
        // The write is in the container's own layer, not in any image layer.
        const layers = join(env().TSGRAPH_ROOT, driver, 'layers');
        const holders = fs.readdirSync(layers).filter((l) => {
          const own = driver === 'overlay' ? join(layers, l, 'diff') : join(layers, l, 'root');
          // On btrfs/vfs every layer is a full tree: only the container's own tree may hold the write.
          return fs.existsSync(join(own, 'written-by-runc'));
        });
        assert.equal(holders.length, 1);
        assert.match(holders[0]!, /^c-/);
        assert.equal(fs.readFileSync(join(path, 'written-by-runc'), 'utf8'), 'from-container\n');
        const u = await runCli(['umount', 'runc-ctr'], env());
        assert.equal(u.code, 0, u.stderr);
      });

      it('pull + mount + change + commit, and the committed image mounts with the change', async () => {
        assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env())).code, 0);
        const m = parseJsonOutput<{ path: string }>(await runCli(['mount', 'busybox', '--name', 'to-commit', '--json'], env()));
        fs.writeFileSync(join(m.path, 'etc/motd'), `committed on ${driver}\n`);
        fs.rmSync(join(m.path, 'bin/wc'));
        const d = await runCli(['diff', 'to-commit'], env());
        assert.deepEqual(d.stdout.trim().split('\n'), ['C /bin', 'D /bin/wc', 'C /etc', 'A /etc/motd']);
        const c = await runCli(['commit', 'to-commit', `localhost/committed-${driver}:v1`, '--json'], env());
        assert.equal(c.code, 0, c.stderr);
        const again = parseJsonOutput<{ path: string }>(await runCli(['mount', `localhost/committed-${driver}:v1`, '--name', 'from-commit', '--json'], env()));
        assert.equal(fs.readFileSync(join(again.path, 'etc/motd'), 'utf8'), `committed on ${driver}\n`);
        assert.equal(fs.existsSync(join(again.path, 'bin/wc')), false);
        for (const n of ['to-commit', 'from-commit']) assert.equal((await runCli(['rm', n], env())).code, 0);
      });

      it('mount --read-only refuses writes; references count; ps shows the state', async () => {
        assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env())).code, 0);
        const ro = await runCli(['mount', 'busybox', '--name', 'ro', '--read-only'], env());
        assert.equal(ro.code, 0, ro.stderr);
        const path = ro.stdout.trim();
        assert.throws(() => fs.writeFileSync(join(path, 'nope'), 'x'), { code: 'EROFS' });
        assert.equal((await runCli(['umount', 'ro'], env())).code, 0);

        const a = await runCli(['mount', 'busybox', '--name', 'twice'], env());
        const b = await runCli(['mount', 'twice'], env());
        assert.equal(a.stdout, b.stdout, 'mounting a container again returns the same root');
        assert.equal((await runCli(['umount', 'twice'], env())).code, 0);
        let ps = parseJsonOutput<Array<{ name: string; mounted: boolean }>>(await runCli(['containers', '--json'], env()));
        assert.equal(ps.find((c) => c.name === 'twice')?.mounted, true, 'one reference is left');
        assert.equal((await runCli(['umount', 'twice'], env())).code, 0);
        ps = parseJsonOutput(await runCli(['ps', '--json'], env()));
        assert.equal(ps.find((c) => c.name === 'twice')?.mounted, false);
        const dup = await runCli(['mount', 'busybox', '--name', 'twice'], env());
        assert.equal(dup.code, 9, 'a taken name is a conflict');
        assert.match(dup.stderr, /a container named twice already exists \(TSG_EXISTS\)/);
        const missing = await runCli(['umount', 'no-such'], env());
        assert.equal(missing.code, 3);
        assert.match(missing.stderr, /no container named no-such \(TSG_NOT_FOUND\)/);
      });

      it('a layer whose diffId does not match the config fails the pull and registers nothing (acceptance 5)', async () => {
        const good = await makeLayer([{ path: 'ok', content: 'fine' }]);
        const bad = await makeLayer([{ path: 'bad', content: 'tampered tar' }]);
        const lying = makeImage({ layers: [good, bad], diffIds: [good.diffId, sha256('not the real tar')] });
        const dir = join(tmp.dir, `lying-${driver}`);
        writeOciLayout(dir, [{ tag: 'v1', image: lying }]);
        const root = join(tmp.dir, `root-lying-${driver}`);
        const r = await runCli(['pull', `oci:${dir}:v1`, '--json'], { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: driver });
        assert.equal(r.code, 5);
        const err = parseJsonOutput<{ error: { code: string; message: string } }>(r).error;
        assert.equal(err.code, 'TSG_DIGEST_MISMATCH');
        assert.match(err.message, /diffId/);
        const images = parseJsonOutput<unknown[]>(await runCli(['images', '--json'], { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: driver }));
        assert.deepEqual(images, []);
        const metas = fs.readdirSync(join(root, 'meta', 'layers'));
        assert.equal(metas.length, 1, 'only the good base layer stays registered');
        const driverLayers = fs.readdirSync(join(root, driver, 'layers')).filter((n) => !n.startsWith('.'));
        assert.deepEqual(driverLayers, [good.diffId.slice(7)], 'the bad layer is gone from the driver too');
      });

      it('shares layers between images: the second image unpacks only its own layer', async () => {
        const base = await makeLayer([{ path: 'base', content: 'shared base' }]);
        const one = makeImage({ layers: [base, await makeLayer([{ path: 'one', content: '1' }])] });
        const two = makeImage({ layers: [base, await makeLayer([{ path: 'two', content: '2' }])] });
        const dir = join(tmp.dir, `shared-${driver}`);
        writeOciLayout(dir, [{ tag: 'one', image: one }, { tag: 'two', image: two }]);
        const e = { TSGRAPH_ROOT: join(tmp.dir, `root-shared-${driver}`), TSGRAPH_DRIVER: driver };
        const first = parseJsonOutput<{ layersUnpacked: number; layersReused: number }>(await runCli(['pull', `oci:${dir}:one`, '--json'], e));
        const second = parseJsonOutput<{ layersUnpacked: number; layersReused: number }>(await runCli(['pull', `oci:${dir}:two`, '--json'], e));
        assert.deepEqual([first.layersUnpacked, first.layersReused], [2, 0]);
        assert.deepEqual([second.layersUnpacked, second.layersReused], [1, 1]);
      });

      it('an unpack killed mid-layer leaves an incomplete mark that the next open removes', async () => {
        // ~6000 files: unpacking takes long enough to be caught in the middle.
        const entries = Array.from({ length: 6000 }, (_, i) => ({ path: `many/f${i}`, content: randomBytes(64).toString('hex') }));
        const big = layerFromTar(await makeTar(entries), 'gzip');
        const dir = join(tmp.dir, `crash-${driver}`);
        writeOciLayout(dir, [{ tag: 'v1', image: makeImage({ layers: [big] }) }]);
        const root = join(tmp.dir, `root-crash-${driver}`);
        const e = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: driver };
        const metaPath = join(root, 'meta', 'layers', `${big.diffId.slice(7)}.json`);
        const child = spawnCli(['pull', `oci:${dir}:v1`], e);
        const exited = new Promise((resolve) => child.on('exit', resolve));
        let caught = false;
        for (let i = 0; i < 2000 && !caught; i++) {
          await sleep(5);
          try {
            caught = JSON.parse(fs.readFileSync(metaPath, 'utf8')).incomplete === true;
          } catch {
            /* not written yet */
          }
        }
        child.kill('SIGKILL');
        await exited;
        assert.ok(caught, 'the layer was seen incomplete before the kill');
        assert.equal(JSON.parse(fs.readFileSync(metaPath, 'utf8')).incomplete, true, 'killed before it completed');
        // Any command opens the store, and opening repairs it.
        const ps = await runCli(['images', '--json'], e);
        assert.equal(ps.code, 0, ps.stderr);
        assert.equal(fs.existsSync(metaPath), false, 'the incomplete layer record is gone');
        assert.equal(fs.existsSync(join(root, driver, 'layers', big.diffId.slice(7))), false, 'and its driver layer');
        const again = await runCli(['pull', `oci:${dir}:v1`, '--json'], e);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(parseJsonOutput<{ layersUnpacked: number }>(again).layersUnpacked, 1);
      });
    });
  }
});
