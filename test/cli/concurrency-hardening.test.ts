/**
 * Several processes on one root, and kills between the steps of `mount`
 * (issue 8, defects 11, 13 and 16). Races are made deterministic with the
 * test hooks of src/util/crash-point.ts: a process pauses at a named step
 * until the test lets it go, reports that it waits on a lock, or SIGKILLs
 * itself at a step. Every test checks mountinfo below its root at the end.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256Hex } from '../../src/digest.js';
import { readMountInfo } from '../../src/mount/index.js';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { hookEnv, release, startCli, waitReached } from '../helpers/hooks.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

/** Mount points at or below `dir` (one entry per mount: stacked mounts repeat). */
function mountsBelow(dir: string): string[] {
  return readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

/** Container layer dirs (`c-<hex>`) the driver holds. */
function containerLayers(root: string, driver: string): string[] {
  return fs.readdirSync(join(root, driver, 'layers')).filter((n) => n.startsWith('c-'));
}

describe('concurrency and crash hardening', () => {
  let tmp: Tmpfs;
  let n = 0;
  before(() => {
    tmp = mountTmpfs('1g');
  });
  after(() => {
    const left = tmp ? mountsBelow(tmp.dir).filter((p) => p !== tmp.dir) : [];
    tmp?.cleanup();
    assert.deepEqual(left, [], 'no mount left behind');
  });

  /** A fresh root with busybox pulled (and unpacked unless told otherwise), and a hook dir. */
  async function setup(driver = 'overlay', pullArgs: string[] = []) {
    n++;
    const root = join(tmp.dir, `root-${n}`);
    const hooks = join(tmp.dir, `hooks-${n}`);
    fs.mkdirSync(hooks);
    const env = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: driver };
    const pull = await runCli(['pull', '-q', ...pullArgs, `oci:${FIXTURE}`], env);
    assert.equal(pull.code, 0, pull.stderr);
    return { root, hooks, env, image: pull.stdout.trim() };
  }

  it('defect 11: two `mount --name X` racing: exactly one wins, the other gets TSG_EXISTS, no orphan layer or mount', async () => {
    const { root, hooks, env } = await setup();
    // A pauses right after finding the name free; B then takes the name; A goes on.
    const a = startCli(['mount', 'busybox', '--name', 'x', '--json'], { ...env, ...hookEnv(hooks, { pause: ['mount:after-name-check'] }) });
    await waitReached(hooks, 'mount:after-name-check', a);
    const b = await runCli(['mount', 'busybox', '--name', 'x', '--json'], env);
    assert.equal(b.code, 0, b.stderr);
    release(hooks, 'mount:after-name-check');
    const ra = await a.done;
    assert.notEqual(ra.code, 0, 'the second claimant must lose');
    assert.match(ra.stdout, /TSG_EXISTS/, '--json prints the error on stdout');
    const { path } = parseJsonOutput<{ path: string }>(b);
    const ps = parseJsonOutput<Array<{ name: string; mounted: boolean; path: string }>>(await runCli(['ps', '--json'], env));
    assert.deepEqual(ps.map((c) => [c.name, c.mounted, c.path]), [['x', true, path]]);
    assert.equal(containerLayers(root, 'overlay').length, 1, 'the loser left no layer');
    assert.deepEqual(mountsBelow(root), [path], 'the loser left no mount');
    assert.equal((await runCli(['rm', 'x'], env)).code, 0);
    assert.deepEqual(mountsBelow(root), []);
    assert.deepEqual(containerLayers(root, 'overlay'), []);
  });

  // Defect 13: SIGKILL at every step of `mount IMAGE`; the next commands must find a sane root.
  for (const step of ['mount:after-claim', 'mount:after-layer-create', 'layer-mount:after-count', 'layer-mount:after-mount', 'mount:after-mount']) {
    it(`defect 13: kill at ${step}: the half-made container is removed, its name reusable, no stacked or stray mount`, async () => {
      const { root, hooks, env } = await setup();
      const killed = await runCli(['mount', 'busybox', '--name', 'c'], { ...env, ...hookEnv(hooks, { crash: step }) });
      assert.equal(killed.signal, 'SIGKILL', `crashed at ${step}: ${killed.stderr}`);
      const ps = parseJsonOutput<Array<{ name: string }>>(await runCli(['ps', '--json'], env));
      assert.deepEqual(ps, [], 'the half-made container is gone');
      assert.deepEqual(mountsBelow(root), [], 'its mount is gone');
      assert.deepEqual(containerLayers(root, 'overlay'), [], 'its layer is gone');
      const m = await runCli(['mount', 'busybox', '--name', 'c', '--json'], env);
      assert.equal(m.code, 0, m.stderr);
      const { path } = parseJsonOutput<{ path: string }>(m);
      assert.ok(fs.existsSync(join(path, 'bin/busybox')));
      assert.deepEqual(mountsBelow(root), [path], 'exactly one mount');
      assert.equal((await runCli(['umount', 'c'], env)).code, 0);
      assert.deepEqual(mountsBelow(root), [], 'one umount leaves nothing mounted');
      const busy = await runCli(['rmi', 'busybox'], env);
      assert.match(busy.stderr, /TSG_IN_USE/, 'rmi names the real container');
      assert.equal((await runCli(['rm', 'c'], env)).code, 0);
      assert.equal((await runCli(['rmi', 'busybox'], env)).code, 0);
    });
  }

  for (const step of ['rm:after-mark', 'rm:after-layer-remove']) {
    it(`defect 13 (sibling in rm): kill at ${step}: the removal is finished by the next command, never a record without its layer`, async () => {
      const { root, hooks, env } = await setup();
      assert.equal((await runCli(['mount', 'busybox', '--name', 'k'], env)).code, 0);
      const killed = await runCli(['rm', 'k'], { ...env, ...hookEnv(hooks, { crash: step }) });
      assert.equal(killed.signal, 'SIGKILL', `crashed at ${step}: ${killed.stderr}`);
      assert.deepEqual(parseJsonOutput<unknown[]>(await runCli(['ps', '--json'], env)), []);
      assert.deepEqual(mountsBelow(root), []);
      assert.deepEqual(containerLayers(root, 'overlay'), []);
      const again = await runCli(['mount', 'busybox', '--name', 'k'], env);
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await runCli(['rm', 'k'], env)).code, 0);
      assert.equal((await runCli(['rmi', 'busybox'], env)).code, 0, 'no leftover record holds the image');
    });
  }

  it('an rm in progress owns its container: mount NAME and a second rm are refused, ps leaves it to rm', async () => {
    const { root, hooks, env } = await setup();
    const m = await runCli(['mount', 'busybox', '--name', 'o', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    const rm = startCli(['rm', 'o'], { ...env, ...hookEnv(hooks, { pause: ['rm:after-mark'] }) });
    await waitReached(hooks, 'rm:after-mark', rm);
    const ps = parseJsonOutput<Array<{ name: string; state?: string }>>(await runCli(['ps', '--json'], env));
    assert.deepEqual(ps.map((c) => [c.name, c.state]), [['o', 'removing']], 'ps shows it, and does not remove it behind rm');
    for (const args of [['mount', 'o'], ['rm', 'o'], ['umount', 'o']]) {
      const r = await runCli(args, env);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /TSG_IN_USE/, args.join(' '));
    }
    release(hooks, 'rm:after-mark');
    const r = await rm.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseJsonOutput<unknown[]>(await runCli(['ps', '--json'], env)), []);
    assert.deepEqual(mountsBelow(root), []);
    assert.deepEqual(containerLayers(root, 'overlay'), []);
    assert.deepEqual(fs.readdirSync(join(root, 'locks')).filter((f) => f.startsWith('container-')), [], 'its lock file went with it');
  });

  it('defect 13: kill between mount and record of `mount NAME` / between unmount and count of `umount`: counts follow mountinfo', async () => {
    const { root, hooks, env } = await setup();
    const m = await runCli(['mount', 'busybox', '--name', 'd', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    const { path } = parseJsonOutput<{ path: string }>(m);
    // Killed after unmounting, before writing the count: the count says 1, nothing is mounted.
    const u = await runCli(['umount', 'd'], { ...env, ...hookEnv(hooks, { crash: 'layer-umount:after-unmount' }) });
    assert.equal(u.signal, 'SIGKILL');
    assert.deepEqual(mountsBelow(root), []);
    let ps = parseJsonOutput<Array<{ mounted: boolean }>>(await runCli(['ps', '--json'], env));
    assert.equal(ps[0]!.mounted, false);
    // Killed after mounting again: mounted and counted.
    const again = await runCli(['mount', 'd'], { ...env, ...hookEnv(hooks, { crash: 'layer-mount:after-mount' }) });
    assert.equal(again.signal, 'SIGKILL');
    ps = parseJsonOutput<Array<{ mounted: boolean }>>(await runCli(['ps', '--json'], env));
    assert.equal(ps[0]!.mounted, true);
    assert.deepEqual(mountsBelow(root), [path]);
    assert.equal((await runCli(['umount', 'd'], env)).code, 0);
    assert.deepEqual(mountsBelow(root), [], 'the one reference it took is the one umount released');
    assert.equal((await runCli(['rm', 'd'], env)).code, 0);
  });

  it('defect 13: a mount nobody counted (left by an older tsgraph) is not stacked on', async () => {
    const { root, env } = await setup();
    const m = await runCli(['mount', 'busybox', '--name', 'e', '--json'], env);
    const { path, id } = parseJsonOutput<{ path: string; id: string }>(m);
    const metaPath = join(root, 'overlay', 'layers', id, 'meta.json');
    const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
    fs.writeFileSync(metaPath, JSON.stringify({ ...meta, mounts: 0 }));
    assert.equal((await runCli(['mount', 'e'], env)).code, 0);
    assert.deepEqual(mountsBelow(root), [path], 'one mount, not two stacked');
    assert.equal((await runCli(['umount', 'e'], env)).code, 0);
    assert.deepEqual(mountsBelow(root), []);
    assert.equal((await runCli(['rm', 'e'], env)).code, 0);
  });

  it('defect 16: a root reached through a symlink keeps its mount counts', async () => {
    n++;
    const real = join(tmp.dir, `real-${n}`);
    fs.mkdirSync(real);
    const link = join(tmp.dir, `link-${n}`);
    fs.symlinkSync(real, link);
    const env = { TSGRAPH_ROOT: link, TSGRAPH_DRIVER: 'overlay' };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    const first = await runCli(['mount', 'busybox', '--name', 's', '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const { path } = parseJsonOutput<{ path: string }>(first);
    assert.equal((await runCli(['mount', 's'], env)).code, 0);
    assert.deepEqual(mountsBelow(real), [path], 'the second reference did not stack a mount');
    assert.equal((await runCli(['umount', 's'], env)).code, 0);
    assert.deepEqual(mountsBelow(real), [path], 'one reference is left');
    assert.equal((await runCli(['umount', 's'], env)).code, 0);
    assert.deepEqual(mountsBelow(real), []);
    assert.equal((await runCli(['rm', 's'], env)).code, 0);
  });

  it('defect 16: rmi waits for a `mount IMAGE` that is unpacking, then refuses (TSG_IN_USE)', async () => {
    const { hooks, env, image } = await setup('overlay', ['--no-unpack']);
    const mount = startCli(['mount', 'busybox', '--name', 'r', '--json'], { ...env, ...hookEnv(hooks, { pause: ['mount:before-unpack'] }) });
    await waitReached(hooks, 'mount:before-unpack', mount);
    const lockWait = `lock-wait:image-${sha256Hex(image)}`;
    const rmi = startCli(['rmi', 'busybox'], { ...env, ...hookEnv(hooks, { notify: [lockWait] }) });
    await waitReached(hooks, lockWait, rmi);
    release(hooks, 'mount:before-unpack');
    const rm = await mount.done;
    assert.equal(rm.code, 0, rm.stderr);
    const ri = await rmi.done;
    assert.notEqual(ri.code, 0);
    assert.match(ri.stderr, /TSG_IN_USE/);
    const images = parseJsonOutput<Array<{ name: string }>>(await runCli(['images', '--json'], env));
    assert.deepEqual(images.map((i) => i.name), [image]);
    const { path } = parseJsonOutput<{ path: string }>(rm);
    assert.ok(fs.existsSync(join(path, 'bin/busybox')));
    assert.equal((await runCli(['rm', 'r'], env)).code, 0);
  });

  it('defect 16: gc is not starved by a stream of shared holders: new ones queue behind it', async () => {
    const { hooks, env } = await setup();
    // One mount holds the gc lock shared (paused); gc comes and waits; a second mount must then wait for gc.
    const m1 = startCli(['mount', 'busybox', '--name', 'g1'], { ...env, ...hookEnv(hooks, { pause: ['mount:before-unpack'] }) });
    await waitReached(hooks, 'mount:before-unpack', m1);
    const gc = startCli(['gc', '--json'], { ...env, ...hookEnv(hooks, { notify: ['lock-wait:gc'] }) });
    await waitReached(hooks, 'lock-wait:gc', gc);
    const m2 = startCli(['mount', 'busybox', '--name', 'g2'], { ...env, ...hookEnv(hooks, { notify: ['lock-wait:gc.intent'] }) });
    await waitReached(hooks, 'lock-wait:gc.intent', m2);
    assert.equal(gc.exited(), false, 'gc is still waiting when the new mount queues behind it');
    release(hooks, 'mount:before-unpack');
    for (const p of [m1, gc, m2]) {
      const r = await p.done;
      assert.equal(r.code, 0, r.stderr);
    }
    for (const name of ['g1', 'g2']) assert.equal((await runCli(['rm', name], env)).code, 0);
  });

  it('defect 16: commit stores the layer from the blob bytes, whatever the container writes meanwhile', async () => {
    const { root, hooks, env } = await setup();
    const m = await runCli(['mount', 'busybox', '--name', 'w', '--json'], env);
    const { path } = parseJsonOutput<{ path: string }>(m);
    fs.writeFileSync(join(path, 'a'), 'one\n');
    const commit = startCli(['commit', 'w', 'localhost/w:1', '--json'], { ...env, ...hookEnv(hooks, { pause: ['commit:after-blob'] }) });
    await waitReached(hooks, 'commit:after-blob', commit);
    fs.writeFileSync(join(path, 'a'), 'two\n');
    fs.writeFileSync(join(path, 'b'), 'late\n');
    release(hooks, 'commit:after-blob');
    const c = await commit.done;
    assert.equal(c.code, 0, c.stderr);
    const { layer } = parseJsonOutput<{ layer: { diffId: string } }>(c);
    const metas = fs.readdirSync(join(root, 'meta', 'layers')).map((f) => JSON.parse(fs.readFileSync(join(root, 'meta', 'layers', f), 'utf8')));
    const stored = metas.find((x) => x.diffId === layer.diffId);
    assert.ok(stored, 'the committed layer is in the driver');
    const diff = join(root, 'overlay', 'layers', stored.chainId.slice(7), 'diff');
    assert.equal(fs.readFileSync(join(diff, 'a'), 'utf8'), 'one\n', 'the layer holds what the blob holds');
    assert.equal(fs.existsSync(join(diff, 'b')), false);
    assert.equal((await runCli(['rm', 'w'], env)).code, 0);
  });

  it('defect 16 (sibling): rm of a container waits for its commit to finish', async () => {
    const { root, hooks, env } = await setup();
    const m = await runCli(['mount', 'busybox', '--name', 'cr', '--json'], env);
    const { path, id } = parseJsonOutput<{ path: string; id: string }>(m);
    fs.writeFileSync(join(path, 'kept'), 'yes\n');
    const commit = startCli(['commit', 'cr', 'localhost/cr:1', '--json'], { ...env, ...hookEnv(hooks, { pause: ['commit:after-blob'] }) });
    await waitReached(hooks, 'commit:after-blob', commit);
    const lockWait = `lock-wait:container-${id}`;
    const rm = startCli(['rm', 'cr'], { ...env, ...hookEnv(hooks, { notify: [lockWait] }) });
    await waitReached(hooks, lockWait, rm);
    assert.ok(fs.existsSync(join(path, 'kept')), 'the container is intact while its commit runs');
    release(hooks, 'commit:after-blob');
    const c = await commit.done;
    assert.equal(c.code, 0, c.stderr);
    const r = await rm.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(mountsBelow(root), []);
    const again = await runCli(['mount', 'localhost/cr:1', '--name', 'cr2', '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(fs.readFileSync(join(parseJsonOutput<{ path: string }>(again).path, 'kept'), 'utf8'), 'yes\n');
    assert.equal((await runCli(['rm', 'cr2'], env)).code, 0);
  });

  it('defect 16: vfs copying a parent tree blocks neither `images` nor `ps`', async () => {
    const { root, hooks, env } = await setup('vfs');
    const mount = startCli(['mount', 'busybox', '--name', 'v', '--json'], { ...env, ...hookEnv(hooks, { pause: ['layer-create:filled'] }) });
    await waitReached(hooks, 'layer-create:filled', mount);
    // Before: the copy held the driver-wide lock, and opening the store waited 60 s for it (TSG_LOCKED).
    for (const verb of ['images', 'ps']) {
      const r = await runCli([verb, '--json'], env, 30_000);
      assert.equal(r.code, 0, `${verb} while a layer is being copied: ${r.stderr}`);
    }
    assert.equal(fs.readdirSync(join(root, 'vfs', 'layers')).filter((d) => d.startsWith('.staging-')).length, 1, 'the staging copy was left alone');
    release(hooks, 'layer-create:filled');
    const r = await mount.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.existsSync(join(parseJsonOutput<{ path: string }>(r).path, 'bin/busybox')));
    assert.equal((await runCli(['rm', 'v'], env)).code, 0);
    assert.deepEqual(mountsBelow(root), []);
  });
});
