/**
 * Driver selection (acceptance 4) and `tsgraph doctor` (acceptance 5).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

/** Every path under `root` with its type, size and content hash: "nothing changed" means equal snapshots. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = fs.lstatSync(p);
      const hash = st.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 12) : '';
      out.push(`${p.slice(root.length)} ${st.mode.toString(8)} ${st.size} ${hash} ${st.mtimeMs}`);
      if (st.isDirectory() && !st.isSymbolicLink()) walk(p);
    }
  };
  walk(root);
  return out;
}

describe('driver selection', () => {
  const tmp = suiteTmpfs('512m');

  it('a fresh root picks overlay where it works, and keeps it', async () => {
    const root = join(tmp.dir, 'fresh');
    const r = await runCli(['pull', `oci:${FIXTURE}`, '--json'], { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: '' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseJsonOutput<{ driver: string }>(r).driver, 'overlay');
    assert.equal(fs.readFileSync(join(root, 'meta/driver'), 'utf8').trim(), 'overlay');
  });

  it('opening a root made by one driver with another is refused clearly and changes nothing', async () => {
    const root = join(tmp.dir, 'made-by-vfs');
    const env = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'vfs' };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    const before = snapshot(root);
    for (const [how, args, extraEnv] of [
      ['--driver', ['--driver', 'overlay', 'images'], {}],
      ['TSGRAPH_DRIVER', ['mount', 'busybox'], { TSGRAPH_DRIVER: 'overlay' }],
      ['--driver btrfs', ['--driver', 'btrfs', 'pull', `oci:${FIXTURE}`], {}],
    ] as const) {
      const r = await runCli([...args], { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: '', ...extraEnv });
      assert.notEqual(r.code, 0, `${how} must be refused`);
      assert.match(r.stderr, /holds vfs layers; refusing to open it with the (overlay|btrfs) driver .*\(TSG_DRIVER_MISMATCH\)/, how);
      assert.deepEqual(snapshot(root), before, `${how}: nothing changed`);
    }
    // The right driver still works.
    assert.equal((await runCli(['images', '-q'], env)).stdout, 'localhost/busybox:latest\n');
  });

  // An existing (empty) root: `images` never creates a missing one, so it would not open a driver.
  const mkRoot = (name: string) => {
    const root = join(tmp.dir, name);
    fs.mkdirSync(root);
    return root;
  };

  it('the btrfs driver refuses a root that is not on btrfs', async () => {
    const r = await runCli(['--driver', 'btrfs', 'images'], { TSGRAPH_ROOT: mkRoot('not-btrfs') });
    assert.equal(r.code, 7);
    assert.match(r.stderr, /needs its root on btrfs; .* is on tmpfs \(TSG_UNSUPPORTED\)/);
  });

  it('an unknown driver name is a usage error', async () => {
    const r = await runCli(['--driver', 'zfs', 'images'], { TSGRAPH_ROOT: mkRoot('unknown') });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown driver "zfs" \(known: overlay, btrfs, aufs, vfs\)/);
  });
});

describe('tsgraph doctor', () => {
  const tmp = suiteTmpfs('64m');

  it('reports every probe, aufs absent with its remedy, and exits 0; --json parses', async () => {
    const root = join(tmp.dir, 'doctor');
    const human = await runCli(['doctor'], { TSGRAPH_ROOT: root });
    assert.equal(human.code, 0, human.stderr);
    const json = await runCli(['doctor', '--json'], { TSGRAPH_ROOT: root });
    assert.equal(json.code, 0);
    const { probes } = parseJsonOutput<{ probes: Array<{ name: string; ok: boolean; detail: string; remedy?: string }> }>(json);
    const byName = new Map(probes.map((p) => [p.name, p]));
    for (const name of ['kernel', 'overlay', 'new mount API', 'max overlay lowers', 'backing filesystem', 'd_type', 'whiteout mknod', 'userxattr needed', 'metacopy / redirect_dir / index', 'reflink', 'btrfs', 'aufs', 'runc']) {
      assert.ok(byName.has(name), `probe ${name}`);
    }
    const aufs = byName.get('aufs')!;
    assert.equal(aufs.ok, fs.readFileSync('/proc/filesystems', 'utf8').includes('aufs'));
    if (!aufs.ok) {
      assert.match(aufs.remedy ?? '', /aufs/);
      assert.match(human.stdout, /FAIL\s+aufs\s+not in this kernel\n\s+remedy: .*aufs/);
    }
    assert.match(byName.get('max overlay lowers')!.detail, /^500 \(501 refused by the kernel: too many lower directories, limit is 500\)$/);
    assert.equal(byName.get('backing filesystem')!.detail, `${root} is on tmpfs`);
    assert.ok(byName.get('runc')!.ok, 'runc is installed by the test script');
    assert.deepEqual(fs.readdirSync(root), [], 'doctor leaves no scratch behind');
  });
});
