/**
 * Rootless (issue 10): a real non-root user, made by the test with a
 * /etc/subuid + /etc/subgid range, pulls an image from the test registry on
 * 127.0.0.1 into its default root ($HOME/.local/share/tsgraph), mounts it in
 * its user + mount namespace (`tsgraph unshare`), writes, runs rootless runc
 * on the mount, diffs and commits — and the image's owners are the real ones
 * everywhere: on disk as the user's subordinate ids, in the container as the
 * image says, in the committed layer as the container saw them. Opaque dirs
 * and whiteouts of a rootless overlay are user.overlay.* / char 0/0.
 * A crash in the middle of a non-root pull leaves the root usable.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getXattr } from '../../src/layer/xattr.js';
import { RegistryClient } from '../../src/registry/client.js';
import { makeImage, makeLayer, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { TSGRAPH, type TestUser, ensureUidmap, makeUser, testImage } from '../helpers/rootless-user.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';

const SUB_START = 524288; // 0x80000: the user's range is 524288..589823

/** The container's view, printed by the process runc starts. */
const PROBE = [
  'id -u',
  'id -g',
  'stat -c "%u:%g %a %n" /home/app /home/app/notes.txt /home/app/new.txt /data /bin/busybox',
  'echo opq: $(ls /opq)',
  'echo keep: $(ls /keep)',
  'cat /hello.txt',
].join('; ');

describe('rootless: a non-root user pulls, mounts, runs runc, diffs and commits on its own root', () => {
  let tmp: Tmpfs;
  let reg: TestRegistry;
  let user: TestUser;
  let ref: string;
  let store: string;
  const mountsBefore = mountPoints();

  before(async () => {
    ensureUidmap();
    tmp = mountTmpfs('1g');
    reg = await startRegistry('plain');
    const client = new RegistryClient({ insecureRegistries: [reg.host] });
    await pushImages(client, reg.host, 'rl/app', 'v1', [await testImage()]);
    // uid 70000: beyond the 65537 ids (the user + 65536) the user's namespace maps.
    const big = await makeLayer([{ path: 'far.txt', content: 'far', uid: 70000, gid: 70000 }]);
    await pushImages(client, reg.host, 'rl/far', 'v1', [makeImage({ layers: [big] })]);
    client.close();
    ref = `${reg.host}/rl/app:v1`;
    user = makeUser(tmp.dir, SUB_START);
    store = join(user.home, '.local', 'share', 'tsgraph');
  });
  after(async () => {
    user?.remove();
    await reg?.stop();
    tmp?.cleanup();
    assert.deepEqual(mountPoints(), mountsBefore, 'no mount left behind');
  });

  it('pulls into $HOME/.local/share/tsgraph, layers owned by the subordinate ids, overlay with user.overlay.* metadata', async () => {
    const r = await user.cli(['pull', '-q', '--insecure-registry', reg.host, ref]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), ref);
    assert.equal(fs.readFileSync(join(store, 'meta', 'driver'), 'utf8').trim(), 'overlay');
    assert.ok(fs.existsSync(join(store, 'overlay', 'userxattr')), 'the overlay home is marked userxattr');
    assert.equal(fs.statSync(store).uid, user.uid);
    const diffs = fs.readdirSync(join(store, 'overlay', 'layers')).map((id) => join(store, 'overlay', 'layers', id, 'diff'));
    const base = diffs.find((d) => fs.existsSync(join(d, 'bin', 'busybox')))!;
    const top = diffs.find((d) => fs.existsSync(join(d, 'opq', 'c.txt')))!;
    assert.ok(base && top);
    // ns uid 0 = the user; ns uid N ≥ 1 = SUB_START + N - 1.
    assert.equal(fs.statSync(join(base, 'bin', 'busybox')).uid, user.uid);
    assert.equal(fs.statSync(join(base, 'home', 'app')).uid, SUB_START + 999);
    assert.equal(fs.statSync(join(base, 'home', 'app', 'notes.txt')).gid, SUB_START + 999);
    assert.equal(fs.statSync(join(base, 'data')).uid, SUB_START + 32);
    assert.equal(fs.statSync(join(base, 'data')).mode & 0o7777, 0o700);
    assert.equal(getXattr(join(top, 'opq'), 'user.overlay.opaque')?.toString(), 'y');
    assert.equal(getXattr(join(top, 'opq'), 'trusted.overlay.opaque'), null);
    const wh = fs.lstatSync(join(top, 'keep', 'gone.txt'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout as char 0/0');
  });

  it('an image owner beyond the subordinate range fails the pull as TSG_ROOTLESS, naming the entry; the root stays usable', async () => {
    const r = await user.cli(['pull', '-q', '--insecure-registry', reg.host, `${reg.host}/rl/far:v1`]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /layer entry "far\.txt" has an owner this user namespace does not map: the \/etc\/subuid or \/etc\/subgid range is too small .*\(TSG_ROOTLESS\)/);
    const images = await user.cli(['images', '-q']);
    assert.equal(images.code, 0, images.stderr);
    assert.equal(images.stdout.trim(), ref);
  });

  it('doctor, run in the namespace, says so and finds the userxattr overlay mount working', async () => {
    const r = await user.cli(['doctor']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^PASS\s+overlay mount\s+mounts with index=off,redirect_dir=nofollow,metacopy=off,userxattr/m);
    assert.match(r.stdout, /^PASS\s+rootless\s+user namespace with subordinate ids \(uid map 0 \d+ 1, 1 524288 65536\)/m);
  });

  it('refuses `mount` outside its namespace, naming `tsgraph unshare`', async () => {
    const r = await user.cli(['mount', ref]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /tsgraph unshare/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('mounts inside `tsgraph unshare` and rootless runc shows the image owners', async () => {
    const bundle = join(user.home, 'bundle');
    fs.mkdirSync(bundle);
    // `runc spec --rootless`: no cgroups, and a user namespace that maps the caller's uid alone (0 in the
    // user's namespace), where every other owner would show as nobody. Like podman, the container runs in
    // the user's namespace itself instead (runc there, as uid 0 of a user namespace, manages no cgroups):
    // the image's owners show as they are (docs/rootless.md).
    assert.equal(spawnSync('runc', ['spec', '--rootless', '--bundle', bundle]).status, 0);
    const spec = JSON.parse(fs.readFileSync(join(bundle, 'config.json'), 'utf8'));
    spec.linux.namespaces = spec.linux.namespaces.filter((n: { type: string }) => n.type !== 'user');
    delete spec.linux.uidMappings;
    delete spec.linux.gidMappings;
    spec.root = { path: '@ROOTFS@', readonly: false };
    spec.process.terminal = false;
    spec.process.args = ['/bin/sh', '-c', PROBE];
    fs.rmSync(join(bundle, 'config.json')); // root's; the user writes its own from the template
    fs.writeFileSync(join(bundle, 'config.tmpl'), JSON.stringify(spec));
    fs.chownSync(bundle, user.uid, user.gid);
    const script = [
      'set -e',
      `T="${TSGRAPH}"`,
      `p=$($T mount --name c1 ${ref})`,
      'echo hello > "$p/hello.txt"',
      'echo more >> "$p/home/app/notes.txt"',
      `sed "s#@ROOTFS@#$p#" ${bundle}/config.tmpl > ${bundle}/config.json`,
      `runc --root "$HOME/runc" run --bundle ${bundle} rl-$$`,
      '$T umount c1 >/dev/null',
    ].join('\n');
    const r = await user.cli(['unshare', '--', '/bin/sh', '-c', script]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines, [
      '0',
      '0',
      '1000:1000 755 /home/app',
      '1000:1000 640 /home/app/notes.txt',
      '1000:1000 644 /home/app/new.txt',
      '33:33 700 /data',
      '0:0 755 /bin/busybox',
      'opq: c.txt',
      'keep:',
      'hello',
    ]);
  });

  it('diffs and commits outside unshare (the verbs enter the namespace themselves); the layer keeps the container owners', async () => {
    const d = await user.cli(['diff', 'c1']);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(d.stdout.trim().split('\n'), ['A /hello.txt', 'C /home', 'C /home/app', 'C /home/app/notes.txt']);
    const tarPath = join(user.home, 'c1.tar');
    const o = await user.cli(['diff', 'c1', '--output', tarPath]);
    assert.equal(o.code, 0, o.stderr);
    const list = spawnSync('tar', ['--numeric-owner', '-tvf', tarPath], { encoding: 'utf8' }).stdout;
    assert.match(list, /^-rw-r--r-- 0\/0 .* hello\.txt$/m);
    assert.match(list, /^-rw-r----- 1000\/1000 .* home\/app\/notes\.txt$/m);
    assert.doesNotMatch(list, /overlay/);
    const c = await user.cli(['commit', 'c1', 'localhost/rl/app:v2']);
    assert.equal(c.code, 0, c.stderr);
    const imgs = await user.cli(['images', '-q']);
    assert.equal(imgs.code, 0, imgs.stderr);
    assert.deepEqual(imgs.stdout.trim().split('\n').sort(), ['localhost/rl/app:v2', ref].sort());
    // The committed image mounts and shows the change with its owners.
    const again = await user.cli(['unshare', '--', '/bin/sh', '-c', `p=$(${TSGRAPH} mount --name c2 localhost/rl/app:v2) && stat -c '%u:%g' "$p/home/app/notes.txt" && cat "$p/hello.txt"`]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.stdout.trim().split('\n'), ['1000:1000', 'hello']);
    for (const name of ['c1', 'c2']) {
      const rm = await user.cli(['rm', name]);
      assert.equal(rm.code, 0, rm.stderr);
    }
  });

  it('SIGTERM to tsgraph reaches the command it runs in the namespace, and both end', async () => {
    const child = user.start(['unshare', '--', '/bin/sh', '-c', 'echo $$; exec sleep 60']);
    let out = '';
    const pid = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      child.on('close', () => reject(new Error(`ended before printing a pid: ${out}`)));
    });
    assert.ok(fs.existsSync(`/proc/${pid}`), 'the command runs');
    const t0 = Date.now();
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 143);
    assert.ok(Date.now() - t0 < 5000, 'ends within seconds');
    // The sleep was the namespace's sh exec'd: gone with the signal, not left behind.
    for (let i = 0; i < 50 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(!fs.existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')), 'the command is gone');
  });

  it('a non-root pull killed half-way leaves the root usable: the next verbs repair it and carry on', async () => {
    const root = join(user.home, 'crashed');
    const env = { TSGRAPH_ROOT: root };
    const killed = await user.cli(['pull', '-q', '--insecure-registry', reg.host, ref], { ...env, TSGRAPH_CRASH_AT: 'layer-create:filled' });
    assert.equal(killed.code, 128 + 9, killed.stderr);
    const leftovers = () => fs.readdirSync(join(root, 'overlay', 'layers')).filter((n) => n.startsWith('.'));
    assert.ok(leftovers().length > 0, 'the crash left a staging dir');
    const images = await user.cli(['images'], env);
    assert.equal(images.code, 0, images.stderr);
    assert.deepEqual(leftovers(), [], 'the next open removed it');
    const pull = await user.cli(['pull', '-q', '--insecure-registry', reg.host, ref], env);
    assert.equal(pull.code, 0, pull.stderr);
    const check = await user.cli(['check'], env);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /^clean/);
  });

  it('a pull the user made without a namespace (library, vfs) fails on chown but leaves the root usable', async () => {
    const root = join(user.home, 'plain');
    const lib = join(user.home, 'lib-pull.mts');
    fs.writeFileSync(
      lib,
      `import { Store } from ${JSON.stringify(join(process.cwd(), 'src', 'store', 'store.ts'))};\n` +
        `const s = await Store.open({ root: ${JSON.stringify(root)}, driver: 'vfs', insecureRegistries: [${JSON.stringify(reg.host)}] });\n` +
        `try { await s.pull(${JSON.stringify(ref)}); } catch (e) { console.log((e as { code?: string }).code); } finally { await s.close(); }\n`,
    );
    fs.chmodSync(lib, 0o644);
    const r = await user.sh(`${process.execPath} --import tsx ${lib}`);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(r.stdout.trim(), '', 'the pull failed (no namespace: chown is not allowed)');
    const env = { TSGRAPH_ROOT: root };
    for (const args of [['images'], ['pull', '-q', '--insecure-registry', reg.host, ref], ['check']]) {
      const v = await user.cli(args, env);
      assert.equal(v.code, 0, `${args.join(' ')}: ${v.stdout}${v.stderr}`);
    }
  });

  it('an image with trusted.* and security.* xattrs pulls into a rootless vfs root (they are the host\'s: dropped)', async () => {
    const client = new RegistryClient({ insecureRegistries: [reg.host] });
    const layer = await makeLayer([{ path: 'x.txt', content: 'x', pax: { 'SCHILY.xattr.trusted.foo': 'bar', 'SCHILY.xattr.user.keep': 'yes' } }]);
    await pushImages(client, reg.host, 'rl/xattr', 'v1', [makeImage({ layers: [layer] })]);
    client.close();
    const r = await user.cli(['pull', '-q', '--insecure-registry', reg.host, `${reg.host}/rl/xattr:v1`], { TSGRAPH_ROOT: join(user.home, 'vfs-root'), TSGRAPH_DRIVER: 'vfs' });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  });
});
