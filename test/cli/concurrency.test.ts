/**
 * Several tsgraph processes on one root, as parallel CI jobs would run them:
 * the flocks serialise what must be serialised and nothing is lost or doubled.
 * Also: `--help` works for every verb.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { mountPoints, suiteTmpfs } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

describe('concurrent tsgraph processes on one root', () => {
  const tmp = suiteTmpfs('512m');

  it('three simultaneous pulls of one image: all succeed, one blob set, one unpacked layer', async () => {
    const env = { TSGRAPH_ROOT: join(tmp.dir, 'shared'), TSGRAPH_DRIVER: 'overlay' };
    const results = await Promise.all([1, 2, 3].map(() => runCli(['pull', `oci:${FIXTURE}`, '--json'], env)));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const unpacked = results.map((r) => parseJsonOutput<{ layersUnpacked: number }>(r).layersUnpacked);
    assert.equal(unpacked.reduce((a, b) => a + b, 0), 1, 'the layer was unpacked exactly once');
    assert.equal(fs.readdirSync(join(env.TSGRAPH_ROOT, 'content/blobs/sha256')).length, 3);
    assert.deepEqual(fs.readdirSync(join(env.TSGRAPH_ROOT, 'content/ingest')), []);
    assert.equal(fs.readdirSync(join(env.TSGRAPH_ROOT, 'meta/layers')).length, 1);
  });

  it('mounts and gc running at the same time never collect a mounted image', async () => {
    const env = { TSGRAPH_ROOT: join(tmp.dir, 'gc-race'), TSGRAPH_DRIVER: 'overlay' };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    const runs = await Promise.all([
      runCli(['mount', 'busybox', '--name', 'm1'], env),
      runCli(['gc'], env),
      runCli(['mount', 'busybox', '--name', 'm2'], env),
      runCli(['gc'], env),
    ]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const name of ['m1', 'm2']) {
      const path = runs[name === 'm1' ? 0 : 2]!.stdout.trim();
      assert.ok(fs.existsSync(join(path, 'bin/busybox')), `${name} still shows its image`);
      assert.equal((await runCli(['rm', name], env)).code, 0);
    }
  });
});

describe('tsgraph bench copy-up', () => {
  const tmp = suiteTmpfs('512m');

  it('times first and second writes for every driver asked, and cleans up its containers', async () => {
    const dir = join(tmp.dir, 'bench');
    const r = await runCli(['bench', 'copy-up', '--drivers', 'overlay,vfs', '--files', '40', '--size', '4096', '--dir', dir, '--json'], {});
    assert.equal(r.code, 0, r.stderr);
    // The old flags map onto the suite (test/cli/bench-copy-up.test.ts covers the rest): --files per size, --size the size list.
    const out = parseJsonOutput<{ results: Array<{ target: string; op: string; size: number; files: number; first: { count: number; p50Us: number }; second: { count: number } }> }>(r);
    assert.deepEqual([...new Set(out.results.map((x) => x.target))], ['overlay', 'vfs']);
    for (const x of out.results.filter((c) => c.op !== 'rename-dir')) {
      assert.equal(x.size, 4096);
      assert.equal(x.first.count, 40);
      assert.equal(x.second.count, 40);
      assert.ok(x.first.p50Us > 0);
    }
    assert.deepEqual(fs.readdirSync(dir), [], 'the bench work dir is gone');
    assert.deepEqual(mountPoints().filter((m) => m.includes(dir)), []);
  });
});

describe('--help on every verb', () => {
  const verbs = ['pull', 'push', 'images', 'mount', 'umount', 'containers', 'diff', 'commit', 'bundle', 'rm', 'rmi', 'gc', 'doctor', 'bench', 'inspect', 'tag', 'login', 'logout'];
  it('prints usage and exits 0 for each', async () => {
    const top = await runCli(['--help'], {});
    assert.equal(top.code, 0);
    for (const v of verbs) {
      assert.match(top.stdout, new RegExp(`\\n  ${v}\\b`), `${v} listed in the top-level help`);
      const r = await runCli([v, '--help'], {});
      assert.equal(r.code, 0, `${v} --help`);
      assert.match(r.stdout, new RegExp(`^Usage: tsgraph ${v}[| ]`), v);
      assert.match(r.stdout, /--json/, `${v} --help shows the global --json`);
    }
    const bad = await runCli(['pull', '--no-such-flag', 'x'], {});
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown option/);
  });
});
