/**
 * Progress lines (stderr piped) say what happens (issue 11): push says
 * pushing/pushed, not downloading/pull complete; a layer listed twice in a
 * manifest shows once; the first pull of present content under a new name
 * says it was tagged, not "up to date".
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

describe('progress lines', () => {
  let sb: Sandbox;
  let reg: TestRegistry;
  let env: Record<string, string>;
  before(async () => {
    sb = makeSandbox();
    reg = await startRegistry('plain');
    env = { ...sb.env, TSGRAPH_DRIVER: 'vfs' };
  });
  after(async () => {
    await reg?.stop();
    sb?.cleanup();
  });

  it('push says pushing and pushed', async () => {
    assert.equal((await runCli(['pull', '-q', `oci:${join(REPO_ROOT, 'fixtures', 'busybox')}`], env)).code, 0);
    const p = await runCli(['push', 'localhost/busybox:latest', `${reg.host}/progress/busybox:1`], env);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stderr, /^[0-9a-f]{12}: pushing [\d.]+ [kM]B$/m);
    assert.match(p.stderr, /^[0-9a-f]{12}: pushed$/m);
    assert.doesNotMatch(p.stderr, /downloading|pull complete/);
    const again = await runCli(['push', 'localhost/busybox:latest', `${reg.host}/progress/busybox:1`], env);
    assert.match(again.stderr, /^[0-9a-f]{12}: layer already exists$/m);
  });

  it('a layer listed twice in a manifest shows once', async () => {
    const a = await makeLayer([{ path: 'a', content: 'a' }]);
    const b = await makeLayer([{ path: 'b', content: 'b' }]);
    writeOciLayout(join(sb.dir, 'twice'), [{ tag: 't', image: makeImage({ layers: [a, b, a] }) }]);
    const r = await runCli(['pull', `oci:${join(sb.dir, 'twice')}:t`], env);
    assert.equal(r.code, 0, r.stderr);
    const short = a.digest.slice(7, 19);
    for (const what of ['downloading', 'pull complete', 'unpacked']) {
      const n = r.stderr.split('\n').filter((l) => l.startsWith(`${short}: ${what}`)).length;
      assert.equal(n, 1, `${what}: ${r.stderr}`);
    }
  });

  it('a present image pulled under a new name says tagged; again, up to date', async () => {
    const src = `${reg.host}/progress/busybox:1`; // pushed by the first test
    assert.equal((await runCli(['push', 'localhost/busybox:latest', `${reg.host}/progress/other:2`], env)).code, 0);
    const first = await runCli(['pull', src], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^Status: Tagged from content already in the store \(nothing fetched\) for /m);
    const again = await runCli(['pull', src], env);
    assert.match(again.stdout, /^Status: Image is up to date for /m);
    const json = await runCli(['--json', 'pull', `${reg.host}/progress/other:2`], env);
    assert.equal(JSON.parse(json.stdout).status, 'tagged');
  });
});
