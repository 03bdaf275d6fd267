/**
 * Faults a real registry cannot produce, injected by a proxy in front of it:
 * corrupted and short bodies (acceptance 3), a blob redirect to another host
 * (4), 429 + Retry-After (5), a kill -9 mid-blob and a dropped connection,
 * both resumed with Range (6).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryClient } from '../../src/registry/client.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { assertBlobAbsent, assertBlobsStored } from '../helpers/assert-store.js';
import { parseJsonOutput, runCli, spawnCli } from '../helpers/cli.js';
import { type BuiltImage, layerFromTar, makeImage, makeLayer, makeTar, pushImages } from '../helpers/image-builder.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox, storedImages, storedIngests } from '../helpers/sandbox.js';

const blobPath = (digest: string) => new RegExp(`/blobs/${digest}$`);

describe('registry faults', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let sb: Sandbox;
  let small: BuiltImage;
  let big: BuiltImage;
  let client: RegistryClient;

  before(async () => {
    reg = await startRegistry('plain');
    proxy = await startFaultProxy({ upstream: reg.host });
    sb = makeSandbox();
    client = new RegistryClient();
    small = makeImage({ layers: [await makeLayer([{ path: 'f.txt', content: 'x'.repeat(5000) + randomBytes(2000).toString('hex') }], 'gzip')] });
    // 8 MiB of random bytes: incompressible, so the blob really is that big.
    big = makeImage({ layers: [layerFromTar(await makeTar([{ path: 'big.bin', content: randomBytes(8 << 20) }]), 'gzip')] });
    await pushImages(client, reg.host, 'faults/small', 'v1', [small]);
    await pushImages(client, reg.host, 'faults/big', 'v1', [big]);
  });
  after(async () => {
    client?.close();
    await proxy?.stop();
    await reg?.stop();
    sb?.cleanup();
  });

  const layerOf = (img: BuiltImage) => img.layers[0]!;

  describe('tampered content stores nothing (acceptance 3)', () => {
    const cases: Array<{ name: string; fault: () => import('../helpers/fault-proxy.js').Fault; code: string }> = [
      { name: 'a flipped byte', fault: () => ({ kind: 'flip', at: 100 }), code: 'TSG_DIGEST_MISMATCH' },
      { name: 'a truncated body', fault: () => ({ kind: 'truncate', keep: Math.floor(layerOf(small).size / 2) }), code: 'TSG_SIZE_MISMATCH' },
    ];
    for (const c of cases) {
      it(`${c.name}: fails with ${c.code}, blob absent, no image, no ingest`, async () => {
        const root = sb.newRoot(c.name.replace(/\W+/g, '-'));
        proxy.rules.length = 0;
        proxy.rules.push({ method: 'GET', path: blobPath(layerOf(small).digest), fault: c.fault() });
        const r = await runCli(['pull', `${proxy.host}/faults/small:v1`], { ...sb.env, TSGRAPH_ROOT: root });
        proxy.rules.length = 0;
        assert.equal(r.code, 5, r.stderr);
        assert.match(r.stderr, new RegExp(`\\(${c.code}\\)`));
        assertBlobAbsent(root, layerOf(small).digest);
        assert.deepEqual(storedImages(root), []);
        assert.deepEqual(storedIngests(root), []);
      });
    }

    for (const delta of [+10, -10]) {
      it(`a descriptor size that is ${delta > 0 ? 'larger' : 'smaller'} than the blob: TSG_SIZE_MISMATCH`, async () => {
        const layer = layerOf(small);
        const lying = makeImage({ layers: [{ ...layer, size: layer.size + delta }] });
        const tag = delta > 0 ? 'larger' : 'smaller';
        await client.pushManifest(reg.host, 'faults/small', tag, lying.manifest.bytes, lying.manifest.mediaType);
        const root = sb.newRoot(`size-${tag}`);
        const r = await runCli(['pull', `${reg.host}/faults/small:${tag}`, '--json'], { ...sb.env, TSGRAPH_ROOT: root });
        assert.equal(r.code, 5);
        assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_SIZE_MISMATCH');
        assertBlobAbsent(root, layer.digest);
        assert.deepEqual(storedImages(root), []);
        assert.deepEqual(storedIngests(root), []);
      });
    }
  });

  describe('redirect to another host (acceptance 4)', () => {
    let basicReg: TestRegistry;
    let front: FaultProxy;
    let cdn: FaultProxy;
    before(async () => {
      basicReg = await startRegistry('basic');
      const auth = `Basic ${Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64')}`;
      front = await startFaultProxy({ upstream: basicReg.host });
      // The "CDN" lives on another loopback address and holds its own credentials.
      cdn = await startFaultProxy({ upstream: basicReg.host, bind: '127.0.0.2', upstreamAuth: auth });
      const pusher = new RegistryClient({ credentials: new CredentialStore({ creds: { username: TEST_USER, password: TEST_PASSWORD } }) });
      await pushImages(pusher, basicReg.host, 'redirect/img', 'v1', [small]);
      pusher.close();
    });
    after(async () => {
      await cdn?.stop();
      await front?.stop();
      await basicReg?.stop();
    });

    it('follows blob redirects and sends the second host zero Authorization headers', async () => {
      front.rules.push({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'redirect', to: cdn.host } });
      const root = sb.newRoot('redirect');
      const r = await runCli(['pull', `${front.host}/redirect/img:v1`, '--creds', `${TEST_USER}:${TEST_PASSWORD}`, '--json'], {
        ...sb.env,
        TSGRAPH_ROOT: root,
      });
      assert.equal(r.code, 0, r.stderr);
      const cdnBlobGets = cdn.log.filter((l) => l.path.includes('/blobs/'));
      assert.ok(cdnBlobGets.length >= 2, `the second host served config and layer (${cdnBlobGets.length} requests)`);
      assert.deepEqual(cdnBlobGets.map((l) => l.authorization), cdnBlobGets.map(() => undefined));
      const frontBlobGets = front.log.filter((l) => l.path.includes('/blobs/'));
      assert.ok(frontBlobGets.every((l) => l.authorization?.startsWith('Basic ')), 'the registry itself did get credentials');
      assertBlobsStored(root, [layerOf(small).digest, small.config.digest]);
    });
  });

  it('downloads layers in parallel, bounded by --jobs (default 3)', async () => {
    const layers = [];
    for (let i = 0; i < 6; i++) layers.push(layerFromTar(await makeTar([{ path: `l${i}`, content: randomBytes(256 << 10) }]), 'none'));
    const wide = makeImage({ layers });
    await pushImages(client, reg.host, 'faults/wide', 'v1', [wide]);
    proxy.rules.length = 0;
    // Slow bodies so that downloads overlap for sure.
    proxy.rules.push({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'throttle', chunk: 32 << 10, delayMs: 15 } });
    for (const [args, bound] of [[['--jobs', '2'], 2], [[], 3]] as const) {
      proxy.resetCounters();
      const r = await runCli(['pull', `${proxy.host}/faults/wide:v1`, ...args], { ...sb.env, TSGRAPH_ROOT: sb.newRoot(`jobs-${bound}`) });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(proxy.maxBlobsInFlight, bound, `at most ${bound} blob downloads at once`);
    }
    proxy.rules.length = 0;
  });

  it('429 with Retry-After: 2 is retried after at least 2 s and succeeds (acceptance 5)', async () => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    const path = blobPath(layerOf(small).digest);
    proxy.rules.push({ method: 'GET', path, fault: { kind: 'status429', retryAfter: '2' }, times: 1 });
    const root = sb.newRoot('429');
    const r = await runCli(['pull', `${proxy.host}/faults/small:v1`], { ...sb.env, TSGRAPH_ROOT: root });
    assert.equal(r.code, 0, r.stderr);
    const hits = proxy.log.filter((l) => path.test(l.path));
    assert.equal(hits.length, 2, 'one throttled request, one retry');
    const waited = hits[1]!.at - hits[0]!.at;
    assert.ok(waited >= 2000, `retried after ${waited} ms`);
    assertBlobsStored(root, [layerOf(small).digest]);
  });

  it('a connection dropped mid-blob is resumed with Range inside the same pull (acceptance 6)', async () => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    const path = blobPath(layerOf(big).digest);
    proxy.rules.push({ method: 'GET', path, fault: { kind: 'drop', after: 3 << 20 }, times: 1 });
    const root = sb.newRoot('drop');
    const r = await runCli(['pull', `${proxy.host}/faults/big:v1`, '--json'], { ...sb.env, TSGRAPH_ROOT: root });
    assert.equal(r.code, 0, r.stderr);
    const ranges = proxy.log.filter((l) => path.test(l.path) && l.range).map((l) => l.range);
    assert.equal(ranges.length, 1, JSON.stringify(proxy.log));
    const from = Number(/^bytes=(\d+)-$/.exec(ranges[0]!)?.[1]);
    assert.ok(from > 0 && from <= 3 << 20, `resumed from ${ranges[0]}`);
    assertBlobsStored(root, [layerOf(big).digest]);
  });

  /**
   * Starts a pull of the big image through a throttled proxy (~2.5 MB/s, so it
   * is surely mid-blob), waits until at least 1 MiB of the layer is on disk
   * (bounded), sends `signal`, and waits for the exit. Clears the proxy after.
   */
  async function interruptPullMidBlob(rootName: string, signal: NodeJS.Signals) {
    proxy.rules.length = 0;
    proxy.log.length = 0;
    const layer = layerOf(big);
    const path = blobPath(layer.digest);
    proxy.rules.push({ method: 'GET', path, fault: { kind: 'throttle', chunk: 64 << 10, delayMs: 25 } });
    const root = sb.newRoot(rootName);
    const child = spawnCli(['pull', `${proxy.host}/faults/big:v1`], { ...sb.env, TSGRAPH_ROOT: root });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let partial = 0;
    for (let i = 0; i < 300 && partial < 1 << 20; i++) {
      await sleep(100);
      for (const d of storedIngests(root)) {
        const data = join(root, 'content', 'ingest', d, 'data');
        if (fs.existsSync(data)) partial = Math.max(partial, fs.statSync(data).size);
      }
    }
    child.kill(signal);
    const code = await exited;
    proxy.rules.length = 0;
    return { root, layer, path, code, stderr, partial };
  }

  it('Ctrl-C during a pull exits 130 with TSG_ABORTED, keeps the partial blob, and the next pull resumes', async () => {
    const { root, path, code, stderr } = await interruptPullMidBlob('sigint', 'SIGINT');
    assert.equal(code, 130);
    assert.match(stderr, /\(TSG_ABORTED\)/);
    assert.equal(storedIngests(root).length, 1, 'the partial blob is kept for a resume');
    const again = await runCli(['pull', `${proxy.host}/faults/big:v1`], { ...sb.env, TSGRAPH_ROOT: root });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(proxy.log.some((l) => path.test(l.path) && l.range), 'resumed with Range');
  });

  it('kill -9 during a large blob, then pull again: resumes with Range (acceptance 6)', async () => {
    const { root, layer, path, partial } = await interruptPullMidBlob('kill9', 'SIGKILL');
    assert.ok(partial >= 1 << 20 && partial < layer.size, `killed mid-blob at ${partial} of ${layer.size}`);
    assert.deepEqual(storedImages(root), [], 'a killed pull registers nothing');

    const r = await runCli(['pull', `${proxy.host}/faults/big:v1`, '--json'], { ...sb.env, TSGRAPH_ROOT: root });
    assert.equal(r.code, 0, r.stderr);
    const out = parseJsonOutput<{ bytesFetched: number }>(r);
    const resumed = proxy.log.filter((l) => path.test(l.path) && l.range);
    assert.equal(resumed.length, 1, 'the second pull asked for the rest with Range');
    const from = Number(/^bytes=(\d+)-$/.exec(resumed[0]!.range!)?.[1]);
    assert.ok(from >= 1 << 20, `resumed from byte ${from}`);
    assert.ok(out.bytesFetched <= layer.size - from + big.config.size, `fetched ${out.bytesFetched} bytes, not the whole ${layer.size}`);
    assertBlobsStored(root, [layer.digest]);
    assert.deepEqual(storedIngests(root), []);
  });
});
