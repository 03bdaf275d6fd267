/**
 * Issue 4's loop, end to end: pull → mount → change → diff → commit → push,
 * read back by independent tools (skopeo, umoci) and by tsgraph itself.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { applyTar } from '../../src/layer/apply.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { naiveFormat } from '../../src/layer/whiteout.js';
import { setXattr } from '../../src/layer/xattr.js';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';
import { listTree } from '../helpers/tree.js';

const run = promisify(execFile);
const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

/** The changes of acceptance 1, made through the mounted root like a container would. */
function changeTree(root: string): void {
  fs.writeFileSync(join(root, 'added.txt'), 'a new file\n'); // add
  fs.appendFileSync(join(root, 'etc/passwd'), 'app:x:1000:1000::/home/app:/bin/sh\n'); // change
  fs.chmodSync(join(root, 'etc/group'), 0o600); // chmod
  fs.rmSync(join(root, 'bin/wc')); // delete a file
  fs.rmSync(join(root, 'root'), { recursive: true }); // delete a dir from a lower
  fs.rmSync(join(root, 'tmp'), { recursive: true }); // recreate a dir: opaque in overlay
  fs.mkdirSync(join(root, 'tmp'), { mode: 0o1777 });
  fs.chmodSync(join(root, 'tmp'), 0o1777);
  fs.writeFileSync(join(root, 'tmp/fresh'), 'fresh\n');
  fs.renameSync(join(root, 'bin/head'), join(root, 'bin/head2')); // rename
}

const EXPECTED_DIFF = ['A /added.txt', 'C /bin', 'D /bin/head', 'A /bin/head2', 'D /bin/wc', 'C /etc', 'C /etc/group', 'C /etc/passwd', 'D /root', 'C /tmp', 'A /tmp/fresh'];

describe('container lifecycle: diff, commit, push, bundle', () => {
  let tmp: Tmpfs;
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let env: Record<string, string>;
  let merged: string[];
  let mergedPath: string;
  const mountsBefore = mountPoints();

  before(async () => {
    tmp = mountTmpfs('2g');
    reg = await startRegistry('plain');
    proxy = await startFaultProxy({ upstream: reg.host });
    env = { TSGRAPH_ROOT: join(tmp.dir, 'root'), TSGRAPH_DRIVER: 'overlay', TSGRAPH_CONFIG_DIR: join(tmp.dir, 'cfg'), DOCKER_CONFIG: join(tmp.dir, 'docker') };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    const m = await runCli(['mount', 'busybox', '--name', 'work', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    mergedPath = parseJsonOutput<{ path: string }>(m).path;
    changeTree(mergedPath);
    merged = listTree(mergedPath);
  });
  after(async () => {
    await runCli(['rm', 'work'], env).catch(() => {});
    await proxy?.stop();
    await reg?.stop();
    tmp?.cleanup();
    assert.deepEqual(mountPoints(), mountsBefore, 'no mount left behind');
  });

  it('diff lists exactly the expected A/C/D lines, natively', async () => {
    const r = await runCli(['diff', 'work'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), EXPECTED_DIFF);
    const j = parseJsonOutput<{ method: string }>(await runCli(['diff', 'work', '--json'], env));
    assert.equal(j.method, 'native');
  });

  it('falls back to the naive diff (and says why) when an upper holds overlay redirect metadata', async () => {
    const m = parseJsonOutput<{ path: string; id: string }>(await runCli(['mount', 'busybox', '--name', 'redir', '--json'], env));
    try {
      fs.mkdirSync(join(m.path, 'moved'));
      fs.writeFileSync(join(m.path, 'moved/x'), 'x');
      const upper = join(env.TSGRAPH_ROOT!, 'overlay/layers', m.id, 'diff');
      setXattr(join(upper, 'moved'), 'trusted.overlay.redirect', '/somewhere');
      const j = parseJsonOutput<{ method: string; reason: string; changes: Array<{ kind: string; path: string }> }>(await runCli(['diff', 'redir', '--json'], env));
      assert.equal(j.method, 'naive');
      assert.match(j.reason, /trusted\.overlay\.redirect/);
      assert.deepEqual(j.changes.map((c) => `${c.kind} ${c.path}`), ['A /moved', 'A /moved/x']);
    } finally {
      assert.equal((await runCli(['rm', 'redir'], env)).code, 0);
    }
  });

  it('the exported layer tar applied on the image reproduces the merged view', async () => {
    const tarPath = join(tmp.dir, 'work.tar');
    assert.equal((await runCli(['diff', 'work', '--output', tarPath], env)).code, 0);
    const tarList = spawnSync('tar', ['tf', tarPath], { encoding: 'utf8' }).stdout;
    assert.match(tarList, /^tmp\/\.wh\.\.wh\.\.opq$/m, 'the recreated dir is opaque');
    assert.match(tarList, /^\.wh\.root$/m);
    assert.doesNotMatch(tarList, /trusted\.overlay/);
    // Image tree (its one layer) + the exported diff, applied the plain way.
    const tree = join(tmp.dir, 'replay');
    fs.mkdirSync(tree);
    const index = JSON.parse(fs.readFileSync(join(FIXTURE, 'index.json'), 'utf8'));
    const manifest = JSON.parse(fs.readFileSync(join(FIXTURE, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
    for (const [path, compression] of [[join(FIXTURE, 'blobs/sha256', manifest.layers[0].digest.slice(7)), 'gzip'], [tarPath, 'none']] as const) {
      const { tar, tap, done } = openLayerTar(fs.createReadStream(path) as unknown as Readable, compression);
      await applyTar(tree, tar, { format: naiveFormat, pax: tap.pax });
      tar.resume();
      await done;
    }
    assert.deepEqual(listTree(tree).slice(1), merged.slice(1), 'same tree (the root dir itself aside)');
  });

  it('commit → push → skopeo copy + umoci unpack give exactly the merged view', async () => {
    const c = await runCli(['commit', 'work', 'localhost/roundtrip:v1', '--json'], env);
    assert.equal(c.code, 0, c.stderr);
    const commit = parseJsonOutput<{ digest: string; diffMethod: string }>(c);
    assert.equal(commit.diffMethod, 'native');
    const p = await runCli(['push', 'localhost/roundtrip:v1', `${reg.host}/roundtrip:v1`, '--json'], env);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(parseJsonOutput<{ digest: string }>(p).digest, commit.digest);
    const layout = join(tmp.dir, 'skopeo-layout');
    await skopeo(tmp.dir, ['copy', '--src-tls-verify=false', `docker://${reg.host}/roundtrip:v1`, `oci:${layout}:v1`]);
    const bundle = join(tmp.dir, 'umoci-bundle');
    await run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
    assert.deepEqual(listTree(join(bundle, 'rootfs')).slice(1), merged.slice(1));
    // And tsgraph's own mount of the committed image shows the same.
    const m = await runCli(['mount', 'localhost/roundtrip:v1', '--name', 'check', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    assert.deepEqual(listTree(parseJsonOutput<{ path: string }>(m).path).slice(1), merged.slice(1));
    assert.equal((await runCli(['rm', 'check'], env)).code, 0);
  });

  it('a zstd commit is pulled back by tsgraph and by skopeo', async () => {
    const c = await runCli(['commit', 'work', 'localhost/zst:v1', '--compress', 'zstd', '--json'], env);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(parseJsonOutput<{ layer: { mediaType: string } }>(c).layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    assert.equal((await runCli(['push', 'localhost/zst:v1', `${reg.host}/zst:v1`], env)).code, 0);
    const fresh = { ...env, TSGRAPH_ROOT: join(tmp.dir, 'root-zstd') };
    const pull = await runCli(['pull', `${reg.host}/zst:v1`, '--json'], fresh);
    assert.equal(pull.code, 0, pull.stderr);
    const m = await runCli(['mount', `${reg.host}/zst:v1`, '--name', 'z', '--json'], fresh);
    assert.equal(m.code, 0, m.stderr);
    assert.deepEqual(listTree(parseJsonOutput<{ path: string }>(m).path).slice(1), merged.slice(1));
    assert.equal((await runCli(['rm', 'z'], fresh)).code, 0);
    const raw = JSON.parse(await skopeo(tmp.dir, ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/zst:v1`]));
    assert.equal(raw.layers.at(-1).mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    await skopeo(tmp.dir, ['copy', '--src-tls-verify=false', `docker://${reg.host}/zst:v1`, `oci:${join(tmp.dir, 'zst-layout')}:v1`]);
    assert.ok(fs.existsSync(join(tmp.dir, 'zst-layout', 'index.json')));
  });

  it('push skips blobs the registry has, cross-mounts from another repo, and chunks big blobs', async () => {
    const again = parseJsonOutput<{ uploaded: number; existed: number }>(await runCli(['push', 'localhost/roundtrip:v1', `${reg.host}/roundtrip:v1`, '--json'], env));
    assert.deepEqual([again.uploaded, again.existed], [0, 3]);
    // An image pulled from repo A of this registry, pushed to repo B: its blobs are mounted, not sent.
    const pulled = { ...env, TSGRAPH_ROOT: join(tmp.dir, 'root-mount') };
    assert.equal((await runCli(['pull', '-q', `${proxy.host}/roundtrip:v1`], pulled)).code, 0);
    proxy.log.length = 0;
    const moved = parseJsonOutput<{ mounted: number; uploaded: number }>(await runCli(['push', `${proxy.host}/roundtrip:v1`, `${proxy.host}/elsewhere:v1`, '--json'], pulled));
    assert.equal(moved.uploaded, 0);
    assert.equal(moved.mounted, 3);
    assert.ok(proxy.log.some((l) => l.method === 'POST' && /mount=sha256/.test(l.path) && /from=roundtrip/.test(l.path)));
    // Chunked upload: a small chunk size forces PATCHes.
    proxy.log.length = 0;
    const chunked = await runCli(['push', 'localhost/roundtrip:v1', `${proxy.host}/chunked:v1`, '--chunk-size', '200000', '--json'], env);
    assert.equal(chunked.code, 0, chunked.stderr);
    assert.ok(proxy.log.filter((l) => l.method === 'PATCH').length >= 5, 'big blobs went up in PATCH chunks');
    const back = await runCli(['pull', `${reg.host}/chunked:v1`, '--json'], { ...env, TSGRAPH_ROOT: join(tmp.dir, 'root-chunked') });
    assert.equal(back.code, 0, back.stderr);
  });

  it('runc runs the bundle of a committed image, with its Cmd from the config', async () => {
    const c = await runCli(['commit', 'work', 'localhost/withcmd:v1', '--change', 'CMD ["sh", "-c", "echo cmd-from-config; cat /added.txt"]', '--change', 'ENV GREETING=hi'], env);
    assert.equal(c.code, 0, c.stderr);
    const dir = join(tmp.dir, 'bundle');
    const b = await runCli(['bundle', 'localhost/withcmd:v1', dir, '--json'], env);
    assert.equal(b.code, 0, b.stderr);
    const spec = JSON.parse(fs.readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(spec.process.args, ['sh', '-c', 'echo cmd-from-config; cat /added.txt']);
    assert.ok(spec.process.env.includes('GREETING=hi'));
    const id = `tsgraph-bundle-${randomBytes(4).toString('hex')}`;
    try {
      const { stdout } = await run('runc', ['run', '-b', dir, id], { timeout: 60_000 });
      assert.equal(stdout, 'cmd-from-config\na new file\n');
    } finally {
      spawnSync('runc', ['delete', '-f', id]);
    }
    const rm = await runCli(['bundle', '--remove', dir], env);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(fs.existsSync(dir), false);
    const ps = parseJsonOutput<Array<{ image: string }>>(await runCli(['ps', '--json'], env));
    assert.ok(!ps.some((c) => c.image === 'localhost/withcmd:v1'), 'removing the bundle removed its container');
  });
});
