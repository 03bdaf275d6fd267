/**
 * Issue 8, defect 16 (probe part): a kill while the first command probes
 * overlay left a mounted `.probe-*` dir that nothing removed. Now every probe
 * and every store open removes dead probes' dirs (unmounting first), and
 * never a live probe's (a prober holds a shared flock on the dir it probes in).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OverlayDriver } from '../../src/drivers/overlay/overlay.js';
import { cleanupProbes, probeIn } from '../../src/drivers/probe.js';
import { selectDriver } from '../../src/drivers/registry.js';
import { mount, readMountInfo, unmount } from '../../src/mount/index.js';
import { native } from '../../src/native.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

/** Mount points at or below `dir`. */
function mountsBelow(dir: string): string[] {
  return readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
}

function probeDirs(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.startsWith('.probe-')) : [];
}

/** What a probe killed mid-mount leaves: `<home>/<name>/` with an overlay mounted inside. */
function fakeDeadProbe(home: string, name: string): string {
  const dir = join(home, name);
  for (const d of ['l1', 'l2', 'u', 'w', 'm']) fs.mkdirSync(join(dir, d), { recursive: true });
  mount({ type: 'overlay', lowers: [join(dir, 'l1'), join(dir, 'l2')], upper: join(dir, 'u'), work: join(dir, 'w'), options: [] }, join(dir, 'm'));
  return join(dir, 'm');
}

describe('probe leftovers (defect 16)', () => {
  let tmp: Tmpfs;
  let work: string;
  before(() => {
    tmp = mountTmpfs('256m');
    work = makeTempDir('tsgraph-probe-');
  });
  after(() => {
    const left = mountsBelow(tmp.dir).filter((p) => p !== tmp.dir);
    tmp.cleanup();
    removeDir(work);
    assert.deepEqual(left, [], 'every mount made by the suite is gone');
  });
  const env = (root: string) => ({ TSGRAPH_ROOT: root, TSGRAPH_CONFIG_DIR: join(work, 'config'), DOCKER_CONFIG: join(work, 'docker'), TSGRAPH_DRIVER: '' });

  it('a first command killed with its overlay probe mounted: the next command removes it', async () => {
    const root = join(tmp.dir, 'killed');
    const killed = await runCli(['pull', '-q', `oci:${FIXTURE}`], { ...env(root), TSGRAPH_CRASH_AT: 'probe:overlay-mounted' });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    const home = join(root, 'overlay');
    assert.equal(probeDirs(home).length, 1, 'the killed probe left its dir');
    assert.equal(mountsBelow(join(home, probeDirs(home)[0]!)).length, 1, '… with its overlay still mounted');

    const again = await runCli(['pull', '-q', `oci:${FIXTURE}`], env(root));
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(probeDirs(home), [], 'no probe dir left');
    assert.deepEqual(mountsBelow(root), [], 'mountinfo is clean below the root');
    assert.equal(fs.readFileSync(join(root, 'meta/driver'), 'utf8').trim(), 'overlay', 'overlay still picked');
  });

  it('doctor killed mid-probe: its root-level probe dir goes on the next store open, whatever the driver', async () => {
    const root = join(tmp.dir, 'doctor');
    const killed = await runCli(['doctor'], { ...env(root), TSGRAPH_CRASH_AT: 'probe:overlay-mounted' });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.equal(probeDirs(root).length, 1);
    assert.equal(mountsBelow(root).length, 1);
    // vfs never probes overlay, so only the open-time sweep can catch it.
    const pull = await runCli(['pull', '-q', `oci:${FIXTURE}`], { ...env(root), TSGRAPH_DRIVER: 'vfs' });
    assert.equal(pull.code, 0, pull.stderr);
    assert.deepEqual(probeDirs(root), []);
    assert.deepEqual(mountsBelow(root), []);
  });

  it('store open and driver cleanup remove only our own dead probes', async () => {
    const root = join(tmp.dir, 'fake');
    await selectDriver(root, 'overlay');
    const home = join(root, 'overlay');
    fakeDeadProbe(home, '.probe-deadbeef');
    fakeDeadProbe(root, '.probe-0badf00d');
    // Not ours by name: kept, even when mounted.
    const foreign = fakeDeadProbe(home, '.probe-keep');
    fs.mkdirSync(join(home, '.probe-DEADBEEF'));
    try {
      await selectDriver(root); // what Store.open does first
      assert.deepEqual(probeDirs(root), []);
      assert.deepEqual(probeDirs(home).sort(), ['.probe-DEADBEEF', '.probe-keep']);
      assert.deepEqual(mountsBelow(root), [foreign]);

      fakeDeadProbe(home, '.probe-12345678');
      await new OverlayDriver(home).cleanup(); // what Store.open's repair (and check --repair) runs
      assert.deepEqual(probeDirs(home).sort(), ['.probe-DEADBEEF', '.probe-keep']);
      assert.deepEqual(mountsBelow(root), [foreign]);
    } finally {
      unmount(foreign);
    }
  });

  it('a live probe is never swept: a cleaner skips while any prober holds the dir', () => {
    const home = join(tmp.dir, 'live');
    fs.mkdirSync(home);
    const mounted = fakeDeadProbe(home, '.probe-aaaaaaaa');
    // Stand in for another process mid-probe: a shared flock on `home` (flock
    // conflicts between open files, even within one process).
    const n = native();
    const fd = fs.openSync(home, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      assert.ok(n.flock(fd, n.lockConstants.LOCK_SH | n.lockConstants.LOCK_NB));
      assert.deepEqual(cleanupProbes(home), [], 'nothing swept while a probe runs');
      assert.deepEqual(mountsBelow(home), [mounted]);
      // A second prober still runs (shared with the first) and leaves the other's dir alone.
      const p = probeIn(home, 'second', (dir) => {
        assert.ok(fs.existsSync(join(home, '.probe-aaaaaaaa')), 'the live probe dir is untouched');
        return dir;
      });
      assert.ok(p.ok, p.detail);
      assert.ok(!fs.existsSync(p.detail), 'the second prober removed its own dir');
    } finally {
      fs.closeSync(fd);
    }
    assert.deepEqual(cleanupProbes(home), ['.probe-aaaaaaaa'], 'swept once the prober is gone');
    assert.deepEqual(mountsBelow(home), []);
  });
});
