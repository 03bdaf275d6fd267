/**
 * Issue 8, defect 17: overlay with a long --root. fsconfig takes at most 255
 * bytes per string, and a layer dir is the root plus ~85 bytes
 * (`/overlay/layers/<64 hex>/diff`), so a root over ~170 bytes made every
 * overlay mount a bare EINVAL (TSG_INTERNAL) while `doctor`, probing short
 * paths, said PASS and overlay was auto-selected. Layer dirs now go by fd and
 * the probes use real path lengths: for a 200-byte root (the old gap) and a
 * 300-byte one (over 255 itself), doctor's verdict, the driver picked and
 * real mounts of a 3-layer image and a 100-layer chain (lowers together far
 * past one 4096-byte options page) all agree.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readMountInfo } from '../../src/mount/index.js';
import { makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

/** A path of exactly `length` bytes under `base`, made of components ≤ 60 bytes (not created). */
function deepPath(base: string, length: number): string {
  let p = base;
  while (p.length < length) p = join(p, 'r'.repeat(Math.max(1, Math.min(60, length - p.length - 1))));
  return p;
}

function mountsBelow(dir: string): string[] {
  return readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

interface DoctorProbe {
  name: string;
  ok: boolean;
  detail: string;
}

describe('overlay on a long root (defect 17)', () => {
  let tmp: Tmpfs;
  let work: string;
  let layout: string;
  before(async () => {
    tmp = mountTmpfs('512m');
    work = makeTempDir('tsgraph-longroot-');
    layout = join(work, 'layout');
    const three = [];
    for (let i = 0; i < 3; i++) three.push(await makeLayer([{ path: `f${i}`, content: `layer ${i}\n` }, { path: 'shared', content: `from ${i}\n` }]));
    const hundred = [];
    for (let i = 0; i < 100; i++) hundred.push(await makeLayer([{ path: `f${i}`, content: `layer ${i}\n` }, { path: 'shared', content: `from ${i}\n` }]));
    writeOciLayout(layout, [
      { tag: 'three', image: makeImage({ layers: three }) },
      { tag: 'hundred', image: makeImage({ layers: hundred }) },
    ]);
  });
  after(() => {
    const left = mountsBelow(tmp.dir).filter((p) => p !== tmp.dir);
    tmp.cleanup();
    removeDir(work);
    assert.deepEqual(left, [], 'every mount made by the suite is gone');
  });

  for (const length of [200, 300]) {
    it(`a ${length}-byte root: doctor passes, overlay is picked, and 3- and 100-layer images mount`, async () => {
      const root = deepPath(join(tmp.dir, `root${length}`), length);
      assert.equal(root.length, length);
      const env = { TSGRAPH_ROOT: root, TSGRAPH_CONFIG_DIR: join(work, 'config'), DOCKER_CONFIG: join(work, 'docker'), TSGRAPH_DRIVER: '' };

      const doctor = await runCli(['doctor', '--json'], env);
      assert.equal(doctor.code, 0, doctor.stderr);
      const probes = new Map(parseJsonOutput<{ probes: DoctorProbe[] }>(doctor).probes.map((p) => [p.name, p]));
      for (const name of ['overlay mount', 'max overlay lowers']) assert.ok(probes.get(name)?.ok, `${name}: ${probes.get(name)?.detail}`);
      // The probe really used paths as long as the store's layer dirs (over 255 bytes here).
      const probed = Number(/layer paths (\d+) bytes/.exec(probes.get('overlay mount')!.detail)?.[1]);
      assert.ok(probed >= length + 85 && probed > 255, `probe paths are ${probed} bytes`);

      const pull = await runCli(['pull', '--json', `oci:${layout}:three`], env);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(parseJsonOutput<{ driver: string }>(pull).driver, 'overlay', 'doctor said overlay works, so it is picked');

      const m = await runCli(['mount', '--json', parseJsonOutput<{ name: string }>(pull).name, '--name', 'three'], env);
      assert.equal(m.code, 0, m.stderr + m.stdout);
      const merged = parseJsonOutput<{ path: string }>(m).path;
      try {
        for (let i = 0; i < 3; i++) assert.equal(fs.readFileSync(join(merged, `f${i}`), 'utf8'), `layer ${i}\n`);
        assert.equal(fs.readFileSync(join(merged, 'shared'), 'utf8'), 'from 2\n', 'the top layer wins');
        fs.writeFileSync(join(merged, 'written'), 'w');
      } finally {
        assert.equal((await runCli(['umount', 'three'], env)).code, 0);
      }
      assert.equal((await runCli(['rm', 'three'], env)).code, 0);

      const pull100 = await runCli(['pull', '--json', `oci:${layout}:hundred`], env);
      assert.equal(pull100.code, 0, pull100.stderr);
      const m100 = await runCli(['mount', '--json', parseJsonOutput<{ name: string }>(pull100).name, '--name', 'hundred', '--read-only'], env);
      assert.equal(m100.code, 0, m100.stderr + m100.stdout);
      try {
        const path = parseJsonOutput<{ path: string }>(m100).path;
        assert.equal(fs.readFileSync(join(path, 'f0'), 'utf8'), 'layer 0\n', 'the bottom of the chain is there');
        assert.equal(fs.readFileSync(join(path, 'f99'), 'utf8'), 'layer 99\n');
        assert.equal(fs.readFileSync(join(path, 'shared'), 'utf8'), 'from 99\n');
        assert.equal(fs.readdirSync(path).length, 101);
      } finally {
        assert.equal((await runCli(['umount', 'hundred'], env)).code, 0);
      }
      assert.equal((await runCli(['rm', 'hundred'], env)).code, 0);
      assert.deepEqual(mountsBelow(root), []);
    });
  }
});
