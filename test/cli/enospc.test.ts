/**
 * A full disk is an ordinary failure: a pull or commit that does not fit on a
 * small loop filesystem fails with TSG_NO_SPACE, registers nothing, leaves a
 * store that the next command trusts, and `gc` gives the space back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { type BuiltImage, FIXED_MTIME, layerFromTar, makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type LoopFs, makeLoopFs } from '../helpers/loopfs.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { ustarHeader } from '../../src/layer/tar-header.js';

const MiB = 1 << 20;

/** A one-file tar made by hand: tar-stream would buffer the whole body anyway. */
function oneFileTar(name: string, body: Buffer): Buffer {
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([ustarHeader(name, '0', body.length, Math.floor(FIXED_MTIME.getTime() / 1000)), body, pad, Buffer.alloc(1024)]);
}

describe('a full disk (ENOSPC) on a small loop filesystem', () => {
  let disk: LoopFs;
  let work: string;
  let layout: string;
  let env: Record<string, string>;
  const images: Record<string, BuiltImage> = {};

  before(async () => {
    disk = makeLoopFs('ext4', '64m');
    work = makeTempDir('tsgraph-enospc-');
    layout = join(work, 'layout');
    env = { TSGRAPH_ROOT: join(disk.dir, 'root'), TSGRAPH_CONFIG_DIR: join(work, 'config'), DOCKER_CONFIG: join(work, 'docker'), TSGRAPH_DRIVER: 'overlay' };
    const small = await makeLayer([{ path: 'etc/', type: 'directory' }, { path: 'etc/hello', content: 'hi\n' }]);
    // Incompressible and bigger than the disk: the download itself cannot fit.
    const big = layerFromTar(oneFileTar('big.bin', randomBytes(80 * MiB)), 'none');
    // 100 MiB of zeros compress to ~100 KiB: the blob fits, the unpacked layer does not.
    const bomb = layerFromTar(oneFileTar('zeros.bin', Buffer.alloc(100 * MiB)), 'gzip');
    images.small = makeImage({ layers: [small] });
    images.big = makeImage({ layers: [small, big] });
    images.bomb = makeImage({ layers: [small, bomb] });
    writeOciLayout(layout, Object.entries(images).map(([tag, image]) => ({ tag, image })));
  });
  after(() => {
    disk?.cleanup();
    if (work) removeDir(work);
  });

  const freeAfterGc = async () => {
    const gc = await runCli(['gc', '--json'], env);
    assert.equal(gc.code, 0, gc.stderr);
    return disk.free();
  };

  it('a download that does not fit fails with TSG_NO_SPACE and gc returns the space', async () => {
    const ok = await runCli(['pull', `oci:${layout}:small`, '--json'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const baseline = await freeAfterGc();
    const r = await runCli(['pull', `oci:${layout}:big`, '--json'], env);
    assert.notEqual(r.code, 0);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_NO_SPACE', r.stdout + r.stderr);
    const list = parseJsonOutput<Array<{ name: string }>>(await runCli(['images', '--json'], env));
    assert.ok(!list.some((i) => i.name.endsWith(':big')), 'nothing registered');
    const free = await freeAfterGc();
    assert.ok(free >= baseline - 8 * MiB, `space back after gc: ${free} vs ${baseline}`);
  });

  it('a layer that unpacks larger than the disk fails with TSG_NO_SPACE and leaves no half layer', async () => {
    const baseline = await freeAfterGc();
    const r = await runCli(['pull', `oci:${layout}:bomb`, '--json'], env);
    assert.notEqual(r.code, 0);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_NO_SPACE', r.stdout + r.stderr);
    const list = parseJsonOutput<Array<{ name: string }>>(await runCli(['images', '--json'], env));
    assert.ok(!list.some((i) => i.name.endsWith(':bomb')), 'nothing registered');
    const free = await freeAfterGc();
    assert.ok(free >= baseline - 2 * MiB, `space back after gc: ${free} vs ${baseline}`);
    // And the store still works.
    const again = await runCli(['pull', `oci:${layout}:small`, '--json'], env);
    assert.equal(again.code, 0, again.stderr);
  });

  it('a commit that does not fit fails with TSG_NO_SPACE; the container survives and gc returns the space', async () => {
    const pulled = await runCli(['pull', `oci:${layout}:small`, '--json'], env);
    assert.equal(pulled.code, 0, pulled.stderr);
    const small = parseJsonOutput<Array<{ name: string }>>(await runCli(['images', '--json'], env)).find((i) => i.name.endsWith(':small'));
    assert.ok(small, 'the small image is there');
    const m = await runCli(['mount', small.name, '--name', 'fill', '--json'], env);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    const merged = parseJsonOutput<{ path: string }>(m).path;
    const baseline = disk.free();
    // Fill most of the free space inside the container; the commit needs as much again.
    fs.writeFileSync(join(merged, 'fill.bin'), randomBytes(Math.floor(baseline * 0.6)));
    const c = await runCli(['commit', 'fill', 'localhost/full:1', '--compress', 'none', '--json'], env);
    assert.notEqual(c.code, 0);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(c).error.code, 'TSG_NO_SPACE', c.stdout + c.stderr);
    const list = parseJsonOutput<Array<{ name: string }>>(await runCli(['images', '--json'], env));
    assert.ok(!list.some((i) => i.name === 'localhost/full:1'), 'nothing registered');
    const ps = parseJsonOutput<Array<{ name: string }>>(await runCli(['containers', '--json'], env));
    assert.ok(ps.some((p) => p.name === 'fill'), 'the container is still there');
    assert.ok(fs.existsSync(join(merged, 'fill.bin')), 'and its data');
    for (const args of [['umount', 'fill'], ['rm', 'fill']]) {
      const r = await runCli(args, env);
      assert.equal(r.code, 0, r.stderr);
    }
    const free = await freeAfterGc();
    assert.ok(free >= baseline - 2 * MiB, `space back after gc: ${free} vs ${baseline}`);
  });
});
