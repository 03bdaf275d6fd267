/**
 * A gzip commit big enough that its blob is made of many parallel-deflated
 * blocks (src/layer/compress.ts) is an ordinary gzip layer to everyone:
 * GNU gzip checks it and gives back the diffId's tar, skopeo copies it and
 * umoci (Go's compress/gzip) unpacks it to the container's merged view, and
 * tsgraph pulls it from the registry into another root with the same view.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';
import { listTree } from '../helpers/tree.js';

const run = promisify(execFile);
const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

/** ~5 MB the way real layers look: text runs and incompressible stretches. */
function writeChanges(root: string): void {
  let seed = 12345;
  const bytes = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      if ((i >> 13) % 2) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        b[i] = seed >>> 24;
      } else b[i] = 'static int f(int x) { return x * 2; }\n'.charCodeAt(i % 38);
    }
    return b;
  };
  fs.mkdirSync(join(root, 'data/sub'), { recursive: true });
  fs.writeFileSync(join(root, 'data/big.bin'), bytes(3 << 20));
  for (let i = 0; i < 40; i++) fs.writeFileSync(join(root, `data/sub/f${i}`), bytes(50_000 + i));
  fs.writeFileSync(join(root, 'data/empty'), '');
  fs.symlinkSync('big.bin', join(root, 'data/link'));
  fs.rmSync(join(root, 'bin/wc'));
}

describe('gzip commit in parallel blocks, read by other tools', () => {
  let tmp: Tmpfs;
  let reg: TestRegistry;
  let env: Record<string, string>;
  let merged: string[];

  before(async () => {
    tmp = mountTmpfs('2g');
    reg = await startRegistry('plain');
    env = { TSGRAPH_ROOT: join(tmp.dir, 'root'), TSGRAPH_DRIVER: 'overlay', TSGRAPH_CONFIG_DIR: join(tmp.dir, 'cfg'), DOCKER_CONFIG: join(tmp.dir, 'docker') };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    const m = await runCli(['mount', 'busybox', '--name', 'big', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    const path = parseJsonOutput<{ path: string }>(m).path;
    writeChanges(path);
    merged = listTree(path);
  });
  after(async () => {
    await runCli(['rm', 'big'], env).catch(() => {});
    await reg?.stop();
    // Only this suite's mounts: other suites may mount and unmount meanwhile.
    const left = tmp ? mountPoints().filter((m) => m.startsWith(`${tmp.dir}/`)) : [];
    tmp?.cleanup();
    assert.deepEqual(left, [], 'no mount left behind');
  });

  it('commit writes a multi-block gzip blob that GNU gzip decodes to the diffId tar; skopeo + umoci and a pull elsewhere see the merged view', async () => {
    const c = await runCli(['commit', 'big', 'localhost/big:v1', '--json'], env);
    assert.equal(c.code, 0, c.stderr);
    const layer = parseJsonOutput<{ layer: { digest: string; diffId: string; size: number; mediaType: string } }>(c).layer;
    assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    const blobPath = join(env.TSGRAPH_ROOT!, 'content/blobs/sha256', layer.digest.slice(7));
    const gz = spawnSync('gzip', ['-dc', blobPath], { maxBuffer: 64 << 20 });
    assert.equal(gz.status, 0, gz.stderr.toString());
    assert.ok(gz.stdout.length > 4 << 20, 'the tar spans several 1 MiB blocks');
    assert.equal(`sha256:${createHash('sha256').update(gz.stdout).digest('hex')}`, layer.diffId);

    assert.equal((await runCli(['push', 'localhost/big:v1', `${reg.host}/big:v1`], env)).code, 0);
    const layout = join(tmp.dir, 'layout');
    await skopeo(tmp.dir, ['copy', '--src-tls-verify=false', `docker://${reg.host}/big:v1`, `oci:${layout}:v1`]);
    const bundle = join(tmp.dir, 'bundle');
    await run('umoci', ['unpack', '--image', `${layout}:v1`, bundle], { timeout: 120_000 });
    assert.deepEqual(listTree(join(bundle, 'rootfs')).slice(1), merged.slice(1));

    const fresh = { ...env, TSGRAPH_ROOT: join(tmp.dir, 'root2') };
    const pull = await runCli(['pull', '-q', `${reg.host}/big:v1`], fresh);
    assert.equal(pull.code, 0, pull.stderr);
    const m = await runCli(['mount', `${reg.host}/big:v1`, '--name', 'again', '--json'], fresh);
    assert.equal(m.code, 0, m.stderr);
    try {
      assert.deepEqual(listTree(parseJsonOutput<{ path: string }>(m).path).slice(1), merged.slice(1));
    } finally {
      assert.equal((await runCli(['rm', 'again'], fresh)).code, 0);
    }
  });
});
