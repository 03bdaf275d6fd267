/**
 * Acceptance (issue 10): runc runs a container in a user namespace (container
 * ids 0–65535 = host ids 100000–165535) on an idmapped tsgraph mount —
 * overlay, vfs and btrfs — and `id` / `ls -ln` inside show the image's
 * owners (0 and 1000), with no file chowned: on disk the layers keep 0 and
 * 1000, the host sees them through the mount as 100000 and 101000, and what
 * the container writes as its root lands on disk owned by 0 (and a commit
 * records 0 and 1000, never the host range).
 *
 * The store root is private (0700, host root's), which a container's root
 * cannot traverse: the runtime binds the mount into its bundle, as
 * containerd does with its rootfs (docs/idmapped-mounts.md).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { type TarEntry, makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';
import { readMountInfo } from '../../src/mount/index.js';
import { type LoopFs, makeBtrfs } from '../helpers/btrfs.js';
import { nativeIdmap } from '../../src/mount/idmap.js';

const run = promisify(execFile);
const HOST_BASE = 100000;
const MAP = `0:${HOST_BASE}:65536`;

/** Two layers: busybox and the account files (0:0), then a home owned by 1000:1000 and a root-only file. */
export async function writeOwnersImage(dir: string): Promise<void> {
  const applets = ['sh', 'id', 'ls', 'cat', 'echo', 'touch', 'stat'];
  const base: TarEntry[] = [
    { path: 'bin/', type: 'directory' },
    { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
    ...applets.map((a): TarEntry => ({ path: `bin/${a}`, type: 'link', linkname: 'bin/busybox' })),
    { path: 'etc/', type: 'directory' },
    { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' },
    { path: 'etc/group', content: 'root:x:0:\nuser:x:1000:\n' },
  ];
  const top: TarEntry[] = [
    { path: 'home/', type: 'directory' },
    { path: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
    { path: 'home/user/file', content: 'mine\n', uid: 1000, gid: 1000, mode: 0o600 },
    { path: 'srv/', type: 'directory' },
    { path: 'srv/root-file', content: 'root\n', mode: 0o600 },
  ];
  writeOciLayout(dir, [{ tag: 'v1', image: makeImage({ layers: [await makeLayer(base), await makeLayer(top)] }) }]);
}

/** `ls -ln` lines → name → "uid gid". */
function owners(ls: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of ls.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 9 && /^[-dlcbps]/.test(f[0]!)) out.set(f.slice(8).join(' '), `${f[2]} ${f[3]}`);
  }
  return out;
}

async function runcRun(bundle: string, rootfs: string, args: string[], user = { uid: 0, gid: 0 }): Promise<string> {
  fs.rmSync(join(bundle, 'config.json'), { force: true });
  await run('runc', ['spec', '-b', bundle]);
  const config = JSON.parse(fs.readFileSync(join(bundle, 'config.json'), 'utf8'));
  config.root = { path: rootfs, readonly: false };
  config.process.terminal = false;
  config.process.args = args;
  config.process.user = user;
  config.linux.namespaces.push({ type: 'user' });
  config.linux.uidMappings = [{ containerID: 0, hostID: HOST_BASE, size: 65536 }];
  config.linux.gidMappings = [{ containerID: 0, hostID: HOST_BASE, size: 65536 }];
  fs.writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  const id = `tsgraph-idmap-${randomBytes(4).toString('hex')}`;
  try {
    const { stdout } = await run('runc', ['run', '-b', bundle, id], { timeout: 60_000 });
    return stdout;
  } finally {
    spawnSync('runc', ['delete', '-f', id]);
  }
}

describe('runc in a user namespace on an idmapped tsgraph mount', () => {
  let tmpfs: Tmpfs;
  let btrfs: LoopFs;
  let image: string;
  before(async () => {
    tmpfs = mountTmpfs('1g');
    btrfs = makeBtrfs('1g');
    image = join(tmpfs.dir, 'owners-image');
    await writeOwnersImage(image);
  });
  after(() => {
    // Only below our own dirs: other suites may mount and unmount elsewhere meanwhile.
    const left = readMountInfo().filter((m) => m.mountPoint.startsWith(`${tmpfs?.dir}/`) || m.mountPoint.startsWith(`${btrfs?.dir}/`));
    btrfs?.cleanup();
    tmpfs?.cleanup();
    assert.deepEqual(left.map((m) => m.mountPoint), [], 'no mount left behind');
  });

  it('--userns PATH: the mount shows owners through an existing namespace (a process\'s), and its root writes as 0', async () => {
    // A process living in a user namespace with the maps (util-linux's unshare --map-users wants /etc/subuid ranges, even for root).
    const nsFd = nativeIdmap().usernsCreate([0, HOST_BASE, 65536], [0, HOST_BASE, 65536]);
    let nsOpen = true;
    const holder = spawn('nsenter', [`--user=/proc/${process.pid}/fd/${nsFd}`, '--', 'sleep', '600'], { stdio: 'ignore' });
    const env = { TSGRAPH_ROOT: join(tmpfs.dir, 'root-userns'), TSGRAPH_DRIVER: 'overlay' };
    try {
      const nsPath = `/proc/${holder.pid}/ns/user`;
      // Bounded wait until nsenter has joined the namespace and exec'd sleep.
      for (let i = 0; i < 500 && fs.readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim() !== 'sleep'; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      fs.closeSync(nsFd); // the process holds the namespace now
      nsOpen = false;
      assert.equal(fs.readFileSync(`/proc/${holder.pid}/uid_map`, 'utf8').trim().split(/\s+/).join(' '), `0 ${HOST_BASE} 65536`);
      assert.equal((await runCli(['pull', '-q', `oci:${image}:v1`], env)).code, 0);
      const m = await runCli(['mount', 'localhost/owners-image:v1', '--name', 'by-path', '--userns', nsPath, '--json'], env);
      assert.equal(m.code, 0, m.stderr);
      const { path, id } = parseJsonOutput<{ path: string; id: string }>(m);
      assert.equal(fs.statSync(join(path, 'home/user/file')).uid, HOST_BASE + 1000);
      // Through a bind in a dir the namespace's root may traverse (the store root is 0700, host root's).
      const view = join(tmpfs.dir, 'userns-view');
      fs.mkdirSync(view);
      execFileSync('mount', ['--bind', path, view]);
      try {
        execFileSync('nsenter', [`--user=${nsPath}`, '--', '/bin/busybox', 'sh', '-c', `echo x > ${view}/from-ns`]);
      } finally {
        execFileSync('umount', [view]);
      }
      assert.equal(fs.statSync(join(env.TSGRAPH_ROOT, 'overlay', 'layers', id, 'diff', 'from-ns')).uid, 0, 'stored as the namespace saw it');
      const other = await runCli(['mount', 'by-path', '--uidmap', '0:200000:65536'], env);
      assert.equal(other.code, 9, 'mounted with another idmap: in use');
      assert.match(other.stderr, /TSG_IN_USE/);
      assert.equal((await runCli(['umount', 'by-path'], env)).code, 0);
      assert.equal((await runCli(['rm', 'by-path'], env)).code, 0);
      const bad = await runCli(['mount', 'localhost/owners-image:v1', '--userns', '/proc/self/ns/net'], env);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /not a user namespace \(TSG_USAGE\)|user namespace.*TSG_USAGE/);
    } finally {
      if (nsOpen) fs.closeSync(nsFd);
      holder.kill('SIGKILL');
    }
  });

  it('--opt sets checked overlay options (uuid=null shows in mountinfo); bad --opt, --label, --uidmap are usage errors (exit 2) before anything is made', async () => {
    const env = { TSGRAPH_ROOT: join(tmpfs.dir, 'root-opts'), TSGRAPH_DRIVER: 'overlay' };
    assert.equal((await runCli(['pull', '-q', `oci:${image}:v1`], env)).code, 0);
    const m = await runCli(['mount', 'localhost/owners-image:v1', '--name', 'vol', '--opt', 'uuid=null', '--opt', 'xino=off', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    const { path } = parseJsonOutput<{ path: string }>(m);
    const line = readMountInfo().find((x) => x.mountPoint === path);
    assert.match(JSON.stringify(line), /uuid=null/, 'the overlay carries the option');
    assert.equal((await runCli(['rm', 'vol'], env)).code, 0);
    for (const args of [
      ['--opt', 'upperdir=/tmp'],
      ['--opt', 'metacopy=on'],
      ['--opt', 'volatile'],
      ['--label', 'not-a-context'],
      ['--uidmap', '0:100000'],
      ['--uidmap', '0:100000:10', '--uidmap', '5:200000:10'],
      ['--gidmap', '0:1:1'],
      ['--userns', '/etc/passwd'],
    ]) {
      const r = await runCli(['mount', 'localhost/owners-image:v1', '--name', 'refused', ...args], env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /\(TSG_USAGE\)/);
    }
    const ps = parseJsonOutput<unknown[]>(await runCli(['containers', '--json'], env));
    assert.deepEqual(ps, [], 'nothing was made');
  });

  for (const driver of ['overlay', 'vfs', 'btrfs']) {
    it(`${driver}: id and ls -ln inside show the image's owners; nothing is chowned; the container's writes are stored as its ids`, async () => {
      const dir = driver === 'btrfs' ? btrfs.dir : tmpfs.dir;
      const env = { TSGRAPH_ROOT: join(dir, `root-${driver}`), TSGRAPH_DRIVER: driver };
      assert.equal((await runCli(['pull', '-q', `oci:${image}:v1`], env)).code, 0);
      const m = await runCli(['mount', 'localhost/owners-image:v1', '--name', 'idm', '--uidmap', MAP, '--json'], env);
      assert.equal(m.code, 0, m.stderr);
      const { path, id } = parseJsonOutput<{ path: string; id: string }>(m);
      // On the tmpfs whatever the driver: every dir on the way to the rootfs must be open to the container's root (mkdtemp's are 0700).
      const bundle = join(tmpfs.dir, `bundle-${driver}`);
      const rootfs = join(bundle, 'rootfs');
      fs.mkdirSync(rootfs, { recursive: true });
      try {
        // On the host, through the idmapped mount: the image's ids shifted into the container's range.
        assert.equal(fs.statSync(join(path, 'home/user/file')).uid, HOST_BASE + 1000);
        assert.equal(fs.statSync(join(path, 'srv/root-file')).gid, HOST_BASE);
        execFileSync('mount', ['--bind', path, rootfs]);
        try {
          const asRoot = await runcRun(bundle, 'rootfs', ['sh', '-c', 'id; ls -ln / /home /srv; echo from-container > /written; touch /home/by-root']);
          assert.match(asRoot, /^uid=0\(root\) gid=0\(root\)/);
          const seen = owners(asRoot);
          assert.equal(seen.get('user'), '1000 1000', asRoot);
          assert.equal(seen.get('root-file'), '0 0', asRoot);
          for (const d of ['bin', 'etc', 'home', 'srv']) assert.equal(seen.get(d), '0 0', `${d}: ${asRoot}`);
          const asUser = await runcRun(bundle, 'rootfs', ['sh', '-c', 'id; ls -ln /home/user; cat /home/user/file; touch /home/user/by-user'], { uid: 1000, gid: 1000 });
          assert.match(asUser, /^uid=1000\(user\) gid=1000\(user\)/);
          assert.equal(owners(asUser).get('file'), '1000 1000', asUser);
          assert.match(asUser, /^mine$/m);
        } finally {
          execFileSync('umount', [rootfs]);
        }
        // On disk (the layer dirs, no idmap): the image's own ids, and the container's writes as the container saw them.
        const layers = join(env.TSGRAPH_ROOT, driver, 'layers');
        const own = join(layers, id, driver === 'overlay' ? 'diff' : 'root');
        assert.equal(fs.readFileSync(join(own, 'written'), 'utf8'), 'from-container\n');
        for (const [rel, uid] of [['written', 0], ['home/by-root', 0], ['home/user/by-user', 1000]] as const) {
          const st = fs.statSync(join(own, rel));
          assert.deepEqual([st.uid, st.gid], [uid, uid], rel);
        }
        const imageFile = driver === 'overlay'
          ? fs.readdirSync(layers).map((l) => join(layers, l, 'diff/home/user/file')).find((f) => !f.includes(`/${id}/`) && fs.existsSync(f))!
          : join(own, 'home/user/file');
        const st = fs.statSync(imageFile);
        assert.deepEqual([st.uid, st.gid], [1000, 1000], 'the image layer was not chowned');
        // A commit records the ids the container saw, not the host range: mounted plainly, the new image shows 0 and 1000.
        const c = await runCli(['commit', 'idm', `localhost/after-${driver}:1`], env);
        assert.equal(c.code, 0, c.stderr);
        const again = await runCli(['mount', `localhost/after-${driver}:1`, '--name', 'after', '--json'], env);
        assert.equal(again.code, 0, again.stderr);
        const after = parseJsonOutput<{ path: string }>(again).path;
        for (const [rel, uid] of [['written', 0], ['home/user/by-user', 1000], ['home/user/file', 1000]] as const) {
          const s2 = fs.statSync(join(after, rel));
          assert.deepEqual([s2.uid, s2.gid], [uid, uid], `committed ${rel}`);
        }
        assert.equal((await runCli(['rm', 'after'], env)).code, 0);
      } finally {
        assert.equal((await runCli(['umount', 'idm'], env)).code, 0);
        assert.equal((await runCli(['rm', 'idm'], env)).code, 0);
      }
    });
  }
});
