/**
 * `tsgraph check`: each kind of damage a crash, a disk or a person can do to
 * a store is reported (exit 4), `--repair` fixes what the store still has the
 * means to fix (exit 1), and afterwards the store is clean (exit 0). Damage
 * the store cannot undo on its own (a corrupt blob) is reported with what to
 * do, and repair removes the bad bytes so a pull fetches them again.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { hexOf } from '../../src/digest.js';
import { type CliResult, parseJsonOutput, runCli } from '../helpers/cli.js';
import { makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';

interface Report {
  status: 'clean' | 'repaired' | 'damaged';
  findings: Array<{ kind: string; severity: string; subject: string; repaired?: boolean }>;
  blobsVerified: number;
}

const IMAGE = 'localhost/layout:v1';

/** Unmounts `p` if it is mounted (cleanup after a test that may have failed half-way). */
function spawnUmount(p: string): void {
  try {
    execFileSync('umount', ['-l', p], { stdio: 'ignore' });
  } catch {
    /* not mounted */
  }
}

describe('tsgraph check', () => {
  const tmp = suiteTmpfs('512m');
  let layout: string;
  let topDigest: string;
  let n = 0;

  before(async () => {
    layout = join(tmp.dir, 'layout');
    const base = await makeLayer([{ path: 'etc/', type: 'directory' }, { path: 'etc/os-release', content: 'ID=check\n' }]);
    const top = await makeLayer([{ path: 'bin/', type: 'directory' }, { path: 'bin/app', content: 'app\n', mode: 0o755 }]);
    writeOciLayout(layout, [{ tag: 'v1', image: makeImage({ layers: [base, top] }) }]);
    topDigest = top.digest;
  });

  /** A fresh root with the image pulled and, optionally, a container mounted. */
  const fresh = async (container?: string) => {
    const root = join(tmp.dir, `root-${n++}`);
    const env = { TSGRAPH_ROOT: root, TSGRAPH_CONFIG_DIR: join(tmp.dir, 'cfg'), DOCKER_CONFIG: join(tmp.dir, 'docker'), TSGRAPH_DRIVER: 'overlay' };
    const cli = (args: string[]) => runCli(args, env);
    const ok = async (args: string[]) => {
      const r = await cli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
      return r;
    };
    await ok(['pull', `oci:${layout}:v1`]);
    if (container) await ok(['mount', IMAGE, '--name', container]);
    const check = async (...flags: string[]): Promise<[CliResult, Report]> => {
      const r = await cli(['check', '--json', ...flags]);
      return [r, parseJsonOutput<Report>(r)];
    };
    const cleanup = async () => {
      for (const c of parseJsonOutput<Array<{ name: string }>>(await cli(['containers', '--json']))) await cli(['rm', c.name]);
    };
    return { root, cli, ok, check, cleanup };
  };

  const kinds = (r: Report) => r.findings.filter((f) => f.severity !== 'reclaimable').map((f) => f.kind).sort();

  it('a healthy store is clean (exit 0), and its human output says so', async () => {
    const s = await fresh('web');
    const [r, report] = await s.check('--verify-blobs');
    assert.equal(r.code, 0, r.stdout);
    assert.equal(report.status, 'clean');
    assert.ok(report.blobsVerified >= 4, 'every blob re-hashed');
    const human = await s.cli(['check']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^clean: 0 fault\(s\)/m);
    await s.cleanup();
  });

  it('a corrupt blob: found by --verify-blobs, removed by --repair, restored by the next pull', async () => {
    const s = await fresh();
    const blob = join(s.root, 'content', 'blobs', 'sha256', hexOf(topDigest as `sha256:${string}`));
    fs.chmodSync(blob, 0o644);
    fs.writeFileSync(blob, 'tampered');
    const [plain] = await s.check();
    assert.equal(plain.code, 0, 'without --verify-blobs the bytes are not read');
    const [r, report] = await s.check('--verify-blobs');
    assert.equal(r.code, 4);
    assert.deepEqual(kinds(report), ['blob-corrupt']);
    const [fixed, after] = await s.check('--verify-blobs', '--repair');
    assert.equal(fixed.code, 4, 'still damaged: the image needs bytes the store no longer has');
    assert.ok(!fs.existsSync(blob), 'the bad bytes are gone');
    assert.ok(after.findings.some((f) => f.kind === 'blob-corrupt'));
    const [, missing] = await s.check();
    assert.deepEqual(kinds(missing), ['blob-missing']);
    await s.ok(['pull', `oci:${layout}:v1`]);
    const [final] = await s.check('--verify-blobs');
    assert.equal(final.code, 0, final.stdout);
  });

  it('a layer deleted from the driver: reported, re-unpacked from its blob by --repair', async () => {
    const s = await fresh();
    const layers = join(s.root, 'overlay', 'layers');
    const victim = fs.readdirSync(layers).filter((d) => /^[0-9a-f]{64}$/.test(d)).sort()[0]!;
    fs.rmSync(join(layers, victim), { recursive: true });
    const [r, report] = await s.check();
    assert.equal(r.code, 4);
    assert.ok(kinds(report).includes('image-layers-missing'), JSON.stringify(report.findings));
    const [fixed] = await s.check('--repair');
    assert.equal(fixed.code, 1, fixed.stdout);
    assert.ok(fs.existsSync(join(layers, victim)), 're-unpacked');
    const [again] = await s.check();
    assert.equal(again.code, 0, again.stdout);
    await s.ok(['mount', IMAGE, '--name', 'works']);
    await s.cleanup();
  });

  it('mount counts that disagree with the kernel, both ways, and a stray mount', async () => {
    const s = await fresh('a');
    await s.ok(['mount', IMAGE, '--name', 'b']);
    const list = parseJsonOutput<Array<{ name: string; id: string; path: string }>>(await s.cli(['containers', '--json']));
    const a = list.find((c) => c.name === 'a')!;
    const b = list.find((c) => c.name === 'b')!;
    // a: unmounted behind tsgraph's back (count without mount).
    execFileSync('umount', [a.path]);
    // b: its count zeroed while mounted (a mount nobody counts).
    const metaB = join(s.root, 'overlay', 'layers', b.id, 'meta.json');
    fs.writeFileSync(metaB, JSON.stringify({ ...JSON.parse(fs.readFileSync(metaB, 'utf8')), mounts: 0 }));
    // A mount left on the target of a layer that is gone (a killed removal).
    const stray = join(s.root, 'overlay', 'layers', 'c-ffffffffffffffffffffffffffffffff', 'merged');
    fs.mkdirSync(stray, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'stray', stray]);
    const [r, report] = await s.check();
    assert.equal(r.code, 4);
    assert.deepEqual(kinds(report), ['layer-junk', 'mount-count-stale', 'mount-stray', 'mount-uncounted']);
    const [fixed] = await s.check('--repair');
    assert.equal(fixed.code, 1, fixed.stdout);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(b.path) && !mounts.includes(stray), 'uncounted and stray mounts detached');
    const [again] = await s.check();
    assert.equal(again.code, 0, again.stdout);
    // Both containers mount again, once each.
    await s.ok(['mount', 'a']);
    await s.ok(['mount', 'b']);
    assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(` ${b.path} `)).length, 1);
    await s.cleanup();
  });

  it("never touches the user's own mounts: a disk under the root, a volume inside a container", async () => {
    const s = await fresh('vol');
    const list = parseJsonOutput<Array<{ name: string; path: string }>>(await s.cli(['containers', '--json']));
    const merged = list[0]!.path;
    // A stack a killed mount leaves (the same overlay mounted twice on its target)...
    execFileSync('mount', ['--bind', merged, merged]);
    // ...and the user's: a volume bound inside the container, a tmpfs of their own under the root.
    const volume = join(tmp.dir, `volume-${n}`);
    fs.mkdirSync(volume);
    fs.writeFileSync(join(volume, 'keep'), 'user data');
    fs.mkdirSync(join(merged, 'data'));
    execFileSync('mount', ['--bind', volume, join(merged, 'data')]);
    const own = join(s.root, 'content', 'users-own');
    fs.mkdirSync(own);
    execFileSync('mount', ['-t', 'tmpfs', 'users-own', own]);
    try {
      const [r, report] = await s.check();
      assert.equal(r.code, 4);
      assert.deepEqual(kinds(report), ['mount-stacked'], JSON.stringify(report.findings));
      const [fixed] = await s.check('--repair');
      assert.equal(fixed.code, 1, fixed.stdout);
      const table = fs.readFileSync('/proc/self/mountinfo', 'utf8');
      assert.ok(table.includes(` ${own} `), "the user's tmpfs under the root is still mounted");
      assert.equal(table.split('\n').filter((l) => l.split(' ')[4] === merged).length, 1, 'exactly one mount left on the target');
      const [again] = await s.check();
      assert.equal(again.code, 0, again.stdout);
    } finally {
      execFileSync('umount', ['-R', '-l', own]);
      for (const p of [join(merged, 'data')]) spawnUmount(p);
    }
    await s.cleanup();
  });

  it('an orphan driver layer and a container whose layer is gone', async () => {
    const s = await fresh('gone');
    await s.ok(['mount', IMAGE, '--name', 'orphan']);
    const list = parseJsonOutput<Array<{ name: string; id: string }>>(await s.cli(['containers', '--json']));
    const gone = list.find((c) => c.name === 'gone')!;
    const orphan = list.find((c) => c.name === 'orphan')!;
    await s.ok(['umount', 'gone']);
    await s.ok(['umount', 'orphan']);
    const layers = join(s.root, 'overlay', 'layers');
    // A container record whose layer is gone, and a layer whose record is gone.
    fs.rmSync(join(layers, gone.id), { recursive: true });
    fs.rmSync(join(s.root, 'meta', 'containers', 'orphan.json'));
    const [r, report] = await s.check();
    assert.equal(r.code, 4);
    assert.deepEqual(kinds(report), ['container-layer-missing', 'layer-orphan']);
    const [fixed] = await s.check('--repair');
    assert.equal(fixed.code, 1, fixed.stdout);
    assert.ok(!fs.existsSync(join(layers, orphan.id)), 'the orphan layer is removed');
    // The name is free again.
    await s.ok(['mount', IMAGE, '--name', 'gone']);
    const [again] = await s.check();
    assert.equal(again.code, 0, again.stdout);
    await s.cleanup();
  });

  it('a staging dir of a killed layer creation', async () => {
    const s = await fresh();
    const leftover = join(s.root, 'overlay', 'layers', '.staging-c-0123-deadbeef');
    fs.mkdirSync(join(leftover, 'diff', 'etc'), { recursive: true });
    fs.writeFileSync(join(leftover, 'diff', 'etc', 'half'), 'x');
    const [r, report] = await s.check();
    assert.equal(r.code, 4);
    assert.deepEqual(kinds(report), ['layer-leftover']);
    const [fixed] = await s.check('--repair');
    assert.equal(fixed.code, 1, fixed.stdout);
    assert.ok(!fs.existsSync(leftover));
  });

  it('forged and corrupt records: ignored by every verb, reported as damage, removed by --repair — never used as paths', async () => {
    const s = await fresh();
    const outside = join(tmp.dir, `outside-${n}`);
    fs.mkdirSync(outside);
    fs.writeFileSync(join(outside, 'daemon.json'), 'keep');
    fs.writeFileSync(join(outside, 'victim.lock'), 'keep');
    const rel = (p: string) => `../../../../../../../../..${p}`;
    const forged = {
      name: rel(join(outside, 'daemon')),
      id: rel(join(outside, 'victim')),
      image: IMAGE,
      imageDigest: `sha256:${'0'.repeat(64)}`,
      driver: 'overlay',
      readOnly: false,
      createdAt: 'x',
      state: 'removing',
    };
    fs.writeFileSync(join(s.root, 'meta', 'containers', 'evil.json'), JSON.stringify(forged));
    fs.writeFileSync(join(s.root, 'meta', 'images', `${'a'.repeat(64)}.json`), '{"name":');
    // Every verb skips them (the repair at open must not act on a forged removal either).
    const ps = await s.cli(['containers', '--json']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.deepEqual(parseJsonOutput<unknown[]>(ps), []);
    assert.equal((await s.cli(['images', '--json'])).code, 0);
    const [r, report] = await s.check();
    assert.equal(r.code, 4, 'damage, never 1 (repaired) or a crash');
    assert.deepEqual(kinds(report), ['record-invalid', 'record-invalid']);
    const [fixed] = await s.check('--repair');
    assert.equal(fixed.code, 1, fixed.stdout);
    assert.deepEqual(fs.readdirSync(outside).sort(), ['daemon.json', 'victim.lock'], 'nothing outside the store was touched');
    assert.ok(!fs.existsSync(join(s.root, 'meta', 'containers', 'evil.json')));
    const [again] = await s.check();
    assert.equal(again.code, 0, again.stdout);
  });

  it("rm refuses a container with a volume mounted inside its layer, and keeps both (review finding)", async () => {
    const s = await fresh('withvol');
    await s.ok(['umount', 'withvol']);
    const rec = parseJsonOutput<Array<{ name: string; id: string }>>(await s.cli(['containers', '--json']))[0]!;
    const volume = join(tmp.dir, `vol-${n}`);
    fs.mkdirSync(volume);
    fs.writeFileSync(join(volume, 'keep.txt'), 'user data');
    const inside = join(s.root, 'overlay', 'layers', rec.id, 'diff', 'data');
    fs.mkdirSync(inside);
    execFileSync('mount', ['--bind', volume, inside]);
    try {
      const r = await s.cli(['rm', 'withvol', '--json']);
      assert.equal(r.code, 9, r.stdout + r.stderr);
      assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_IN_USE');
      assert.equal(fs.readFileSync(join(volume, 'keep.txt'), 'utf8'), 'user data');
    } finally {
      execFileSync('umount', [inside]);
    }
    await s.ok(['rm', 'withvol']);
    assert.equal(fs.readFileSync(join(volume, 'keep.txt'), 'utf8'), 'user data');
  });

  it('check of a missing root is not found, and never creates it', async () => {
    const root = join(tmp.dir, 'nowhere');
    const r = await runCli(['check', '--json'], { TSGRAPH_ROOT: root });
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.ok(!fs.existsSync(root));
  });
});
