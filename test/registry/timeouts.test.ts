/**
 * Issue 8, defect 10 (network): a registry that goes quiet must not hang
 * anything. Connect (TLS included), response headers, body and upload each
 * have a limit; a timeout is TSG_TIMEOUT (temporary), retried within the
 * retry budget; the caller's AbortSignal still ends a wait at once; a
 * Retry-After longer than we would wait is not waited for.
 * Limits are set to fractions of a second so that every case takes seconds.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/digest.js';
import { TsgraphError } from '../../src/errors.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { login } from '../../src/registry/login.js';
import { assertBlobsStored } from '../helpers/assert-store.js';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { type BlackHole, type FaultProxy, startBlackHole, startFaultProxy } from '../helpers/fault-proxy.js';
import { type BuiltImage, layerFromTar, makeImage, makeTar, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

/** A regression must fail, not hang the suite. */
const LIMIT = { timeout: 30_000 };

/** Short limits and quick retries: a library client whose every wait is a fraction of a second. */
const quick = (extra: RegistryClientOptions = {}): RegistryClient =>
  new RegistryClient({ timeouts: { connectMs: 300, responseMs: 300, idleMs: 300 }, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 }, ...extra });

async function timed<T>(p: Promise<T>): Promise<{ err: TsgraphError; ms: number }> {
  const t0 = Date.now();
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TsgraphError, `a TsgraphError, not ${String(err)}`);
    return { err, ms: Date.now() - t0 };
  }
  assert.fail('expected a failure');
}

describe('every registry wait is bounded (defect 10)', () => {
  let reg: TestRegistry;
  let tokenReg: TestRegistry;
  let proxy: FaultProxy;
  let hole: BlackHole;
  let sb: Sandbox;
  let big: BuiltImage;

  before(async () => {
    [reg, tokenReg] = await Promise.all([startRegistry('plain'), startRegistry('token')]);
    proxy = await startFaultProxy({ upstream: reg.host });
    hole = await startBlackHole();
    sb = makeSandbox();
    big = makeImage({ layers: [layerFromTar(await makeTar([{ path: 'big.bin', content: randomBytes(4 << 20) }]), 'gzip')] });
    const c = new RegistryClient();
    try {
      await pushImages(c, reg.host, 'slow/big', 'v1', [big]);
    } finally {
      c.close();
    }
  });
  after(async () => {
    await proxy?.stop();
    await hole?.stop();
    await Promise.all([reg?.stop(), tokenReg?.stop()]);
    sb?.cleanup();
  });
  const layer = () => big.layers[0]!;

  it('pull from a server that accepts and never answers fails with TSG_TIMEOUT, within the bound', LIMIT, async () => {
    const t0 = Date.now();
    const r = await runCli(['pull', `${hole.host}/x/y:v1`, '--timeout', '0.3', '--json'], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('hole') }, 30_000);
    const ms = Date.now() - t0;
    assert.equal(r.code, 6, r.stderr);
    const { error } = parseJsonOutput<{ error: { code: string; temporary: boolean; data: { phase: string } } }>(r);
    assert.equal(error.code, 'TSG_TIMEOUT');
    assert.equal(error.temporary, true);
    // The TLS handshake (tried first on loopback) never completes: a connect timeout.
    assert.equal(error.data.phase, 'connect');
    assert.ok(hole.accepted >= 5, `retried within the budget (${hole.accepted} connections)`);
    // 5 tries of 0.3 s plus backoff (~3.75 s) plus CLI start-up.
    assert.ok(ms < 10_000, `gave up after ${ms} ms`);
  });

  it('TSGRAPH_TIMEOUT sets the limits too', LIMIT, async () => {
    const r = await runCli(['pull', `${hole.host}/x/y:v1`, '--json'], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('hole-env'), TSGRAPH_TIMEOUT: '0.2' }, 30_000);
    assert.equal(r.code, 6, r.stderr);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_TIMEOUT');
  });

  it("the caller's AbortSignal ends a silent wait at once (default limits)", LIMIT, async () => {
    const c = new RegistryClient();
    try {
      const { err, ms } = await timed(c.getManifest(hole.host, 'x/y', 'v1', AbortSignal.timeout(200)));
      assert.equal(err.code, 'TSG_ABORTED');
      assert.ok(ms < 2000, `aborted after ${ms} ms`);
    } finally {
      c.close();
    }
  });

  it('response headers that never come: retried, and the next try succeeds', LIMIT, async () => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    proxy.rules.push({ method: 'GET', path: /\/manifests\/v1$/, fault: { kind: 'hang' }, times: 1 });
    const c = quick();
    try {
      const m = await c.getManifest(proxy.host, 'slow/big', 'v1');
      assert.equal(m.digest, big.manifest.digest);
    } finally {
      c.close();
    }
    assert.equal(proxy.log.filter((l) => /\/manifests\/v1$/.test(l.path)).length, 2, 'one hung request, one retry');
  });

  it('response headers that never come, every time: TSG_TIMEOUT after exactly the retry budget', LIMIT, async () => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    proxy.rules.push({ method: 'GET', path: /\/manifests\/v1$/, fault: { kind: 'hang' } });
    const c = quick();
    try {
      const { err, ms } = await timed(c.getManifest(proxy.host, 'slow/big', 'v1'));
      assert.equal(err.code, 'TSG_TIMEOUT');
      assert.equal(err.data.phase, 'response');
      assert.match(err.message, /did not answer within 0\.3 s|did not answer within 300 ms/);
      assert.ok(ms < 5000, `${ms} ms`);
    } finally {
      c.close();
      proxy.rules.length = 0;
    }
    assert.equal(proxy.log.filter((l) => /\/manifests\/v1$/.test(l.path)).length, 3, 'attempts: 3');
  });

  it('a manifest body that stalls is fetched again (small bodies are re-read whole)', LIMIT, async () => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    proxy.rules.push({ method: 'GET', path: /\/manifests\/v1$/, fault: { kind: 'stall', after: 10 }, times: 1 });
    const c = quick();
    try {
      assert.equal((await c.getManifest(proxy.host, 'slow/big', 'v1')).digest, big.manifest.digest);
    } finally {
      c.close();
      proxy.rules.length = 0;
    }
    assert.equal(proxy.log.filter((l) => /\/manifests\/v1$/.test(l.path)).length, 2);
  });

  it('a blob body that stalls mid-way: the idle limit cuts it, and the pull resumes with Range', LIMIT, async () => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    const path = new RegExp(`/blobs/${layer().digest}$`);
    proxy.rules.push({ method: 'GET', path, fault: { kind: 'stall', after: 1 << 20 }, times: 1 });
    const root = sb.newRoot('stall-resume');
    const r = await runCli(['pull', `${proxy.host}/slow/big:v1`, '--timeout', '0.5'], { ...sb.env, TSGRAPH_ROOT: root }, 30_000);
    proxy.rules.length = 0;
    assert.equal(r.code, 0, r.stderr);
    const ranges = proxy.log.filter((l) => path.test(l.path) && l.range).map((l) => Number(/^bytes=(\d+)-$/.exec(l.range!)?.[1]));
    assert.equal(ranges.length, 1, JSON.stringify(proxy.log));
    assert.ok(ranges[0]! > 0 && ranges[0]! <= 1 << 20, `resumed from ${ranges[0]}`);
    assertBlobsStored(root, [layer().digest]);
  });

  it('a blob body that never sends a byte: fails with TSG_TIMEOUT (body) after the stalled-attempt budget', LIMIT, async () => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    const path = new RegExp(`/blobs/${layer().digest}$`);
    proxy.rules.push({ method: 'GET', path, fault: { kind: 'stall', after: 0 } });
    const t0 = Date.now();
    const r = await runCli(['pull', `${proxy.host}/slow/big:v1`, '--timeout', '0.3', '--json'], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('stall-dead') }, 30_000);
    const ms = Date.now() - t0;
    proxy.rules.length = 0;
    assert.equal(r.code, 6, r.stderr);
    const { error } = parseJsonOutput<{ error: { code: string; data: { phase: string } } }>(r);
    assert.equal(error.code, 'TSG_TIMEOUT');
    assert.equal(error.data.phase, 'body');
    assert.equal(proxy.log.filter((l) => path.test(l.path)).length, 5, 'five stalled attempts');
    assert.ok(ms < 10_000, `${ms} ms`);
  });

  it('an upload the server stops reading: TSG_TIMEOUT, not a hang', LIMIT, async () => {
    proxy.rules.length = 0;
    proxy.rules.push({ method: 'PATCH', path: /\/blobs\/uploads\//, fault: { kind: 'hang' } });
    const data = randomBytes(32 << 20); // more than loopback socket buffers take
    const c = quick({ retry: { attempts: 1 } });
    try {
      const started = await c.startUpload(proxy.host, 'slow/up', sha256(data));
      const { err, ms } = await timed(c.uploadChunk(proxy.host, 'slow/up', (started as { location: string }).location, data, 0));
      assert.equal(err.code, 'TSG_TIMEOUT');
      assert.ok(['upload', 'response'].includes(err.data.phase as string), String(err.data.phase));
      assert.ok(ms < 5000, `${ms} ms`);
    } finally {
      c.close();
      proxy.rules.length = 0;
    }
  });

  it('a token service that never answers: TSG_TIMEOUT (and login too)', LIMIT, async () => {
    const front = await startFaultProxy({ upstream: tokenReg.host });
    front.rules.push({ path: /^\/v2\//, fault: { kind: 'rewrite', header: 'www-authenticate', from: tokenReg.token!.realm, to: `http://${hole.host}/token` } });
    const creds = new CredentialStore({ creds: { username: TEST_USER, password: TEST_PASSWORD } });
    const c = quick({ credentials: creds });
    try {
      const { err } = await timed(c.getManifest(front.host, 'private/app', 'v1'));
      assert.equal(err.code, 'TSG_TIMEOUT');
      const l = await timed(
        login(front.host, { username: TEST_USER, password: TEST_PASSWORD }, { timeouts: { connectMs: 300, responseMs: 300, idleMs: 300 }, retry: { attempts: 2, baseDelayMs: 10 }, configPath: `${sb.dir}/never.json` }),
      );
      assert.equal(l.err.code, 'TSG_TIMEOUT');
      assert.ok(l.ms < 5000, `${l.ms} ms`);
    } finally {
      c.close();
      await front.stop();
    }
  });

  it('Retry-After longer than the cap is not waited for: the 429 is reported at once', LIMIT, async () => {
    proxy.rules.length = 0;
    proxy.rules.push({ method: 'GET', path: /\/manifests\/v1$/, fault: { kind: 'status429', retryAfter: '3600' }, times: 1 });
    const t0 = Date.now();
    const r = await runCli(['pull', `${proxy.host}/slow/big:v1`, '--json'], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('429-long') }, 25_000);
    const ms = Date.now() - t0;
    proxy.rules.length = 0;
    assert.equal(r.code, 6, r.stderr);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_TOO_MANY_REQUESTS');
    assert.ok(ms < 10_000, `answered after ${ms} ms, not after the 60 s cap`);
  });
});
