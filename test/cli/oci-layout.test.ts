/**
 * Acceptance 9: `tsgraph pull oci:fixtures/busybox` works with the network
 * down (run inside a fresh network namespace: only a downed loopback).
 * Also: the fixture is a valid OCI layout to independent tools, and bad
 * layouts fail clearly.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertBlobAbsent, assertBlobsStored } from '../helpers/assert-store.js';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type Sandbox, makeSandbox, storedImages } from '../helpers/sandbox.js';
import { skopeo } from '../helpers/skopeo.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

describe('pull from an OCI layout', () => {
  let sb: Sandbox;
  before(() => {
    sb = makeSandbox();
  });
  after(() => sb?.cleanup());

  it('works with no network at all (unshare -n)', () => {
    const cli = join(REPO_ROOT, 'src', 'cli', 'main.ts');
    const r = spawnSync('unshare', ['-n', process.execPath, '--import', 'tsx', cli, 'pull', `oci:${FIXTURE}`, '--json'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...sb.env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { name: string; layers: Array<{ digest: string }>; configDigest: string };
    assert.equal(out.name, 'localhost/busybox:latest');
    assertBlobsStored(sb.root, [out.configDigest, ...out.layers.map((l) => l.digest)]);
    // Prove the namespace really had no network: a loopback connection fails in it.
    const probe = spawnSync('unshare', ['-n', process.execPath, '-e', "require('net').connect(9,'127.0.0.1').on('error',e=>{console.log(e.code);process.exit(0)})"], { encoding: 'utf8' });
    assert.match(probe.stdout, /ENETUNREACH|ECONNREFUSED|EADDRNOTAVAIL/);
  });

  it('the bundled fixture is a valid OCI layout to skopeo and umoci', async () => {
    const inspect = JSON.parse(await skopeo(sb.dir, ['inspect', `oci:${FIXTURE}:latest`])) as { Architecture: string; Layers: string[] };
    assert.equal(inspect.Architecture, 'amd64');
    assert.equal(inspect.Layers.length, 1);
    const stat = spawnSync('umoci', ['stat', '--image', `${FIXTURE}:latest`], { encoding: 'utf8' });
    assert.equal(stat.status, 0, stat.stderr);
    assert.match(stat.stdout, /LAYER/);
  });

  it('a tampered blob in a layout fails with TSG_DIGEST_MISMATCH and stores nothing', async () => {
    const dir = join(sb.dir, 'tampered');
    const layer = await makeLayer([{ path: 'x', content: 'original content' }]);
    writeOciLayout(dir, [{ tag: 'v1', image: makeImage({ layers: [layer] }) }]);
    const p = join(dir, 'blobs', 'sha256', layer.digest.slice(7));
    const bytes = fs.readFileSync(p);
    bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff;
    fs.writeFileSync(p, bytes);
    const root = sb.newRoot('tampered');
    const r = await runCli(['pull', `oci:${dir}:v1`, '--json'], { ...sb.env, TSGRAPH_ROOT: root });
    assert.equal(r.code, 5);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_DIGEST_MISMATCH');
    assertBlobAbsent(root, layer.digest);
    assert.deepEqual(storedImages(root), []);
  });

  it('a schema1 manifest is refused with TSG_UNSUPPORTED', async () => {
    const dir = join(sb.dir, 'schema1');
    fs.mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    const body = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'v1', architecture: 'amd64', fsLayers: [], history: [] }));
    const { createHash } = await import('node:crypto');
    const hex = createHash('sha256').update(body).digest('hex');
    fs.writeFileSync(join(dir, 'blobs', 'sha256', hex), body);
    fs.writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    fs.writeFileSync(
      join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws', digest: `sha256:${hex}`, size: body.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
      }),
    );
    const r = await runCli(['pull', `oci:${dir}:v1`], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('schema1') });
    assert.equal(r.code, 7);
    assert.match(r.stderr, /schema1 manifest.*\(TSG_UNSUPPORTED\)/);
  });

  it('an unknown tag names the tags the layout has', async () => {
    const r = await runCli(['pull', `oci:${FIXTURE}:nope`], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('notag') });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /tag nope not found in .*fixtures\/busybox \(has: latest\) \(TSG_TAG_NOT_FOUND\)/);
  });
});

describe('a hostile OCI layout (review finding): links, FIFOs and devices are refused, never read or waited on', () => {
  let sb: Sandbox;
  let layout: string;
  before(async () => {
    sb = makeSandbox();
    layout = join(sb.dir, 'hostile');
    fs.cpSync(FIXTURE, layout, { recursive: true });
  });
  after(() => sb?.cleanup());

  const pull = () => runCli(['pull', `oci:${layout}`, '--json'], sb.env, 20_000);
  const manifestPath = () => {
    const index = JSON.parse(fs.readFileSync(join(FIXTURE, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    return join(layout, 'blobs', 'sha256', index.manifests[0]!.digest.slice('sha256:'.length));
  };

  it('a manifest blob that is a symlink to /dev/zero is TSG_UNSAFE_PATH at once (it ate memory before)', async () => {
    const p = manifestPath();
    const saved = fs.readFileSync(p);
    fs.rmSync(p);
    fs.symlinkSync('/dev/zero', p);
    try {
      const r = await pull();
      assert.equal(r.signal, null, 'it ended by itself');
      assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_UNSAFE_PATH', r.stdout + r.stderr);
    } finally {
      fs.rmSync(p);
      fs.writeFileSync(p, saved);
    }
  });

  it('an index.json that is a FIFO is refused without blocking', async () => {
    const p = join(layout, 'index.json');
    const saved = fs.readFileSync(p);
    fs.rmSync(p);
    spawnSync('mkfifo', [p]);
    try {
      const r = await pull();
      assert.equal(r.signal, null, 'it did not hang until the test killed it');
      assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_UNSAFE_PATH', r.stdout + r.stderr);
    } finally {
      fs.rmSync(p);
      fs.writeFileSync(p, saved);
    }
  });

  it('blobs/ as a symlink out of the layout is not followed; the intact layout still pulls', async () => {
    const blobs = join(layout, 'blobs');
    fs.renameSync(blobs, join(sb.dir, 'elsewhere'));
    fs.symlinkSync(join(sb.dir, 'elsewhere'), blobs);
    try {
      const r = await pull();
      assert.notEqual(r.code, 0);
      assert.match(parseJsonOutput<{ error: { code: string } }>(r).error.code, /TSG_BLOB_NOT_FOUND|TSG_UNSAFE_PATH/);
    } finally {
      fs.rmSync(blobs);
      fs.renameSync(join(sb.dir, 'elsewhere'), blobs);
    }
    const ok = await pull();
    assert.equal(ok.code, 0, ok.stderr);
  });
});
