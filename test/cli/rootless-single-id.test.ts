/**
 * Rootless without a subordinate range (issue 10's single-id fallback): a
 * real user with no /etc/subuid entry sets TSGRAPH_ROOTLESS_IDS=single. Its
 * namespace maps its own id alone (no newuidmap), so every file of the image
 * is owned by the user on disk and the owners it could not set are recorded
 * in user.containers.override_stat (as containers/storage does); a diff or
 * commit writes the recorded owners back into the layer tar, also for a file
 * the container changed (copy-up keeps the record). Device nodes, which a
 * user namespace cannot make, are left out.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getXattr, setXattr } from '../../src/layer/xattr.js';
import { Readable } from 'node:stream';
import { applyTar } from '../../src/layer/apply.js';
import { generateLayerTar } from '../../src/layer/generate.js';
import { overlayFormat } from '../../src/layer/whiteout.js';
import { OVERRIDE_STAT, parseOverride } from '../../src/layer/owner-override.js';
import { makeTar } from '../helpers/image-builder.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { RegistryClient } from '../../src/registry/client.js';
import { makeImage, makeLayer, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { TSGRAPH, type TestUser, makeUser, testImage } from '../helpers/rootless-user.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';

describe('rootless, single id: owners the namespace cannot hold are recorded and come back in layers', () => {
  let tmp: Tmpfs;
  let reg: TestRegistry;
  let user: TestUser;
  let ref: string;
  let store: string;
  const env = { TSGRAPH_ROOTLESS_IDS: 'single' };
  const mountsBefore = mountPoints();

  before(async () => {
    tmp = mountTmpfs('1g');
    reg = await startRegistry('plain');
    const client = new RegistryClient({ insecureRegistries: [reg.host] });
    await pushImages(client, reg.host, 'rl/app', 'v1', [await testImage()]);
    const devices = await makeLayer([
      { path: 'dev', type: 'directory' },
      { path: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { path: 'dev/ok.txt', content: 'ok', uid: 7, gid: 8 },
    ]);
    await pushImages(client, reg.host, 'rl/dev', 'v1', [makeImage({ layers: [devices] })]);
    client.close();
    ref = `${reg.host}/rl/app:v1`;
    user = makeUser(tmp.dir); // no subordinate range
    store = join(user.home, '.local', 'share', 'tsgraph');
  });
  after(async () => {
    user?.remove();
    await reg?.stop();
    tmp?.cleanup();
    assert.deepEqual(mountPoints(), mountsBefore, 'no mount left behind');
  });

  it('pulls: everything owned by the user, the image owners in user.containers.override_stat', async () => {
    const r = await user.cli(['pull', '-q', '--insecure-registry', reg.host, ref], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(join(store, 'meta', 'driver'), 'utf8').trim(), 'overlay');
    const diffs = fs.readdirSync(join(store, 'overlay', 'layers')).map((id) => join(store, 'overlay', 'layers', id, 'diff'));
    const base = diffs.find((d) => fs.existsSync(join(d, 'bin', 'busybox')))!;
    const app = join(base, 'home', 'app');
    assert.equal(fs.statSync(app).uid, user.uid);
    assert.equal(fs.statSync(join(app, 'notes.txt')).uid, user.uid);
    assert.equal(fs.statSync(join(base, 'data')).mode & 0o7777, 0o700, 'modes are the image\'s');
    assert.equal(getXattr(app, 'user.containers.override_stat')?.toString(), '1000:1000:0755:dir');
    assert.equal(getXattr(join(app, 'notes.txt'), 'user.containers.override_stat')?.toString(), '1000:1000:0640:file');
    assert.equal(getXattr(join(base, 'data'), 'user.containers.override_stat')?.toString(), '33:33:0700:dir');
    assert.equal(getXattr(join(base, 'bin', 'busybox'), 'user.containers.override_stat'), null, 'root-owned files need no record');
  });

  it('a changed file keeps its recorded owner in diff --output and commit', async () => {
    const script = `p=$(${TSGRAPH} mount --name c1 ${ref}) && echo more >> "$p/home/app/notes.txt" && echo new > "$p/fresh.txt"`;
    const m = await user.cli(['unshare', '--', '/bin/sh', '-c', script], env);
    assert.equal(m.code, 0, m.stderr);
    const tarPath = join(user.home, 'c1.tar');
    const d = await user.cli(['diff', 'c1', '--output', tarPath], env);
    assert.equal(d.code, 0, d.stderr);
    const list = spawnSync('tar', ['--numeric-owner', '-tvf', tarPath], { encoding: 'utf8' }).stdout;
    assert.match(list, /^-rw-r----- 1000\/1000 .* home\/app\/notes\.txt$/m);
    assert.match(list, /^drwxr-xr-x 1000\/1000 .* home\/app\/?$/m);
    assert.match(list, /^-rw-r--r-- 0\/0 .* fresh\.txt$/m);
    const xattrs = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-tvf', tarPath], { encoding: 'utf8' });
    assert.doesNotMatch(xattrs.stdout + xattrs.stderr, /override_stat/);
    const c = await user.cli(['commit', 'c1', 'localhost/rl/app:v2'], env);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await user.cli(['rm', 'c1'], env)).code, 0);
  });

  it('device nodes are left out (a user namespace cannot make them); the rest of the layer is there', async () => {
    const r = await user.cli(['pull', '-q', '--insecure-registry', reg.host, `${reg.host}/rl/dev:v1`], env);
    assert.equal(r.code, 0, r.stderr);
    const diffs = fs.readdirSync(join(store, 'overlay', 'layers')).map((id) => join(store, 'overlay', 'layers', id, 'diff'));
    const dev = diffs.find((d) => fs.existsSync(join(d, 'dev', 'ok.txt')))!;
    assert.ok(dev);
    assert.equal(fs.existsSync(join(dev, 'dev', 'null')), false);
    assert.equal(getXattr(join(dev, 'dev', 'ok.txt'), 'user.containers.override_stat')?.toString(), '7:8:0644:file');
  });

  it('without TSGRAPH_ROOTLESS_IDS=single the same user is refused, naming the setting', async () => {
    const r = await user.cli(['images']);
    assert.equal(r.code, 7);
    assert.match(r.stderr, /TSGRAPH_ROOTLESS_IDS=single/);
  });
});

describe('user.containers.override_stat is tsgraph\'s own bookkeeping', () => {
  it('an image cannot set it (both apply paths), and only well-formed records are read', async () => {
    const dir = makeTempDir('tsgraph-override-');
    try {
      for (const batch of [true, false]) {
        const root = join(dir, `b${batch}`);
        fs.mkdirSync(root);
        const tar = await makeTar([{ path: 'f.txt', content: 'x', pax: { [`SCHILY.xattr.${OVERRIDE_STAT}`]: '0:0:4755:file', 'SCHILY.xattr.user.kept': 'y' } }]);
        await applyTar(root, Readable.from([tar]), { format: overlayFormat, batch });
        assert.equal(getXattr(join(root, 'f.txt'), OVERRIDE_STAT), null, `batch=${batch}`);
        assert.equal(getXattr(join(root, 'f.txt'), 'user.kept')?.toString(), 'y', `batch=${batch}`);
      }
      for (const bad of ['1:2', '1:2:999:file', 'a:2:0644:file', '99999999999:1:0644:file', '1:2:0644:file;x', '']) assert.equal(parseOverride(Buffer.from(bad)), null, bad);
      assert.deepEqual(parseOverride(Buffer.from('1000:33:0640:file')), { uid: 1000, gid: 33, mode: 0o640, type: 'file' });
      assert.deepEqual(parseOverride(Buffer.from('5:6:0755')), { uid: 5, gid: 6, mode: 0o755, type: '' });
    } finally {
      removeDir(dir);
    }
  });

  it('outside a single-id namespace a layer written from an upper ignores a record (a container could forge one) and drops it', async () => {
    const dir = makeTempDir('tsgraph-override-');
    try {
      fs.writeFileSync(join(dir, 'a.txt'), 'a', { mode: 0o600 });
      setXattr(join(dir, 'a.txt'), OVERRIDE_STAT, '1000:1001:0644:file');
      const chunks: Buffer[] = [];
      for await (const c of generateLayerTar([{ kind: 'A', path: '/a.txt' }], { root: dir, source: 'overlay-upper' })) chunks.push(c as Buffer);
      const out = join(dir, 'out.tar');
      fs.writeFileSync(out, Buffer.concat(chunks));
      const list = spawnSync('tar', ['--numeric-owner', '-tvf', out], { encoding: 'utf8' }).stdout;
      assert.match(list, /^-rw------- 0\/0 .* a\.txt$/m);
      assert.doesNotMatch(Buffer.concat(chunks).toString('latin1'), /override_stat/);
    } finally {
      removeDir(dir);
    }
  });
});
