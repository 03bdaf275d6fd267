/**
 * Acceptance 7: wrong password, unknown repository, unknown tag and a
 * registry that is not listening each give one clear line, a distinct code,
 * a non-zero exit, and leave nothing registered or half-written.
 * Acceptance 8: the second pull of an image fetches no blob.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RegistryClient } from '../../src/registry/client.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type BuiltImage, makeImage, makeLayer, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox, storedBlobs, storedImages, storedIngests } from '../helpers/sandbox.js';
import { freePort } from '../helpers/tmp.js';

describe('clear errors, nothing partial (acceptance 7)', () => {
  let plain: TestRegistry;
  let basic: TestRegistry;
  let token: TestRegistry;
  let sb: Sandbox;
  let image: BuiltImage;

  before(async () => {
    [plain, basic, token] = await Promise.all([startRegistry('plain'), startRegistry('basic'), startRegistry('token')]);
    sb = makeSandbox();
    image = makeImage({ layers: [await makeLayer([{ path: 'e.txt', content: 'errors' }])] });
    const pusher = new RegistryClient({ credentials: new CredentialStore({ creds: { username: TEST_USER, password: TEST_PASSWORD } }) });
    try {
      await pushImages(pusher, plain.host, 'errors/img', 'v1', [image]);
      await pushImages(pusher, basic.host, 'errors/img', 'v1', [image]);
      await pushImages(pusher, token.host, 'errors/img', 'v1', [image]);
    } finally {
      pusher.close();
    }
  });
  after(async () => {
    await Promise.all([plain?.stop(), basic?.stop(), token?.stop()]);
    sb?.cleanup();
  });

  const seen = new Map<string, string>();
  const cases: Array<{ name: string; args: () => Promise<string[]>; code: string; exit: number; message: RegExp }> = [
    {
      name: 'wrong password (Basic)',
      args: async () => [`${basic.host}/errors/img:v1`, '--creds', `${TEST_USER}:wrong`],
      code: 'TSG_AUTH_FAILED',
      exit: 4,
      message: /authentication failed .* wrong username or password/,
    },
    {
      name: 'wrong password (token)',
      args: async () => [`${token.host}/errors/img:v1`, '--creds', `${TEST_USER}:wrong`],
      code: 'TSG_AUTH_FAILED',
      exit: 4,
      message: /authentication failed for user tester .* wrong username or password/,
    },
    {
      name: 'unknown repository',
      args: async () => [`${plain.host}/errors/nope:v1`],
      code: 'TSG_REPO_NOT_FOUND',
      exit: 3,
      message: /repository 127\.0\.0\.1:\d+\/errors\/nope not found/,
    },
    {
      name: 'unknown tag',
      args: async () => [`${plain.host}/errors/img:v9`],
      code: 'TSG_TAG_NOT_FOUND',
      exit: 3,
      message: /tag v9 not found in 127\.0\.0\.1:\d+\/errors\/img/,
    },
    {
      name: 'registry not listening',
      args: async () => [`127.0.0.1:${await freePort()}/errors/img:v1`],
      code: 'TSG_UNREACHABLE',
      exit: 6,
      message: /cannot reach registry 127\.0\.0\.1:\d+: connection refused/,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: one line, ${c.code}, exit ${c.exit}, nothing stored`, async () => {
      const root = sb.newRoot(c.name.replace(/\W+/g, '-'));
      const r = await runCli(['pull', ...(await c.args())], { ...sb.env, TSGRAPH_ROOT: root });
      assert.equal(r.code, c.exit, r.stderr);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `exactly one line: ${JSON.stringify(r.stderr)}`);
      assert.match(lines[0]!, /^tsgraph: .+ \(TSG_[A-Z_]+\)$/);
      assert.ok(lines[0]!.endsWith(`(${c.code})`), lines[0]);
      assert.match(lines[0]!, c.message);
      assert.deepEqual(storedImages(root), []);
      assert.deepEqual(storedIngests(root), []);
      assert.deepEqual(storedBlobs(root), []);
      seen.set(c.name, c.code);
      const json = await runCli(['pull', ...(await c.args()), '--json'], { ...sb.env, TSGRAPH_ROOT: root });
      assert.equal(parseJsonOutput<{ error: { code: string } }>(json).error.code, c.code);
    });
  }

  it('wrong password, unknown repo, unknown tag and no registry have distinct codes', () => {
    const codes = ['wrong password (Basic)', 'unknown repository', 'unknown tag', 'registry not listening'].map((n) => seen.get(n));
    assert.equal(codes.filter(Boolean).length, 4, 'all cases ran');
    assert.equal(new Set(codes).size, 4);
  });
});

describe('a second pull fetches no blob (acceptance 8)', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let sb: Sandbox;

  before(async () => {
    reg = await startRegistry('plain');
    proxy = await startFaultProxy({ upstream: reg.host });
    sb = makeSandbox();
    const img = makeImage({
      layers: [await makeLayer([{ path: 'one', content: '1' }]), await makeLayer([{ path: 'two', content: '2' }], 'zstd')],
    });
    const c = new RegistryClient();
    await pushImages(c, reg.host, 'again/img', 'v1', [img]);
    c.close();
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    sb?.cleanup();
  });

  it('first pull fetches config and layers; the second fetches only the manifest', async () => {
    const ref = `${proxy.host}/again/img:v1`;
    const first = await runCli(['pull', ref, '--json'], sb.env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(parseJsonOutput<{ blobsFetched: number }>(first).blobsFetched, 3);
    const blobGets = () => proxy.log.filter((l) => /\/blobs\/sha256:/.test(l.path)).length;
    const before = blobGets();
    assert.equal(before, 3);
    const second = await runCli(['pull', ref, '--json'], sb.env);
    assert.equal(second.code, 0, second.stderr);
    const out = parseJsonOutput<{ blobsFetched: number; bytesFetched: number; blobsReused: number }>(second);
    assert.equal(blobGets(), before, 'no blob request in the second pull');
    assert.deepEqual([out.blobsFetched, out.bytesFetched, out.blobsReused], [0, 0, 3]);
    const human = await runCli(['pull', ref], sb.env);
    assert.match(human.stdout, /Status: Image is up to date/);
  });
});
