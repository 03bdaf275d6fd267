/**
 * Docker credential helpers: a real helper program (docker-credential-tsgtest,
 * a node script this test puts on PATH, keeping its store in a temp file)
 * speaks the docker-credential-helpers protocol; tsgraph's `login` stores
 * through it, pulls get credentials from it (Basic and token registries),
 * `logout` erases through it; credHelpers beats credsStore per host. A
 * helper that fails, hangs, floods or prints garbage is one TSG_AUTH_FAILED
 * line within bounds, and the secret never appears in the message.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CredentialHelper, HELPER_MAX_OUTPUT, setHelperTimeoutForTests } from '../../src/registry/cred-helper.js';
import { RegistryClient } from '../../src/registry/client.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { TsgraphError } from '../../src/errors.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { makeImage, makeLayer, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

/**
 * The helper: `get`/`erase` read a server URL, `store` a JSON record, `list`
 * prints URL → user; its store is the JSON file $TSGTEST_STORE. $TSGTEST_MODE
 * makes it misbehave: garbage (prints the secret as non-JSON), hang, flood,
 * fail (exit 3 with a message holding the secret).
 */
const HELPER_SOURCE = `
const fs = require('node:fs');
const action = process.argv[2];
const storePath = process.env.TSGTEST_STORE;
const mode = process.env.TSGTEST_MODE || '';
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8').trim();
  const db = fs.existsSync(storePath) ? JSON.parse(fs.readFileSync(storePath, 'utf8')) : {};
  const save = () => fs.writeFileSync(storePath, JSON.stringify(db));
  fs.appendFileSync(storePath + '.log', action + ' ' + (action === 'store' ? JSON.parse(input).ServerURL : input) + '\\n');
  if (mode === 'hang') return setInterval(() => {}, 1000);
  if (mode === 'flood') { process.stdout.write('x'.repeat(${HELPER_MAX_OUTPUT * 2})); return; }
  if (mode === 'garbage') { process.stdout.write('user=tester secret=' + (Object.values(db)[0] || {}).Secret + ' oops'); return; }
  if (mode === 'fail') { process.stdout.write('cannot unlock keyring for ' + (Object.values(db)[0] || {}).Secret); process.exit(3); }
  if (action === 'store') { const r = JSON.parse(input); db[r.ServerURL] = { Username: r.Username, Secret: r.Secret }; save(); return; }
  if (action === 'get') {
    const r = db[input];
    if (!r) { process.stdout.write('credentials not found in native keychain'); process.exit(1); }
    process.stdout.write(JSON.stringify({ ServerURL: input, Username: r.Username, Secret: r.Secret }));
    return;
  }
  if (action === 'erase') {
    if (!db[input]) { process.stdout.write('credentials not found in native keychain'); process.exit(1); }
    delete db[input]; save(); return;
  }
  if (action === 'list') { const out = {}; for (const [k, v] of Object.entries(db)) out[k] = v.Username; process.stdout.write(JSON.stringify(out)); return; }
  process.exit(2);
});
`;

interface HelperEnv {
  dir: string;
  store: string;
  env: Record<string, string>;
  cleanup(): void;
}

function installHelper(): HelperEnv {
  const dir = makeTempDir('tsgraph-credhelper-');
  const bin = join(dir, 'bin');
  fs.mkdirSync(bin);
  const program = join(bin, 'docker-credential-tsgtest');
  fs.writeFileSync(program, `#!${process.execPath}\n${HELPER_SOURCE}`, { mode: 0o755 });
  const store = join(dir, 'store.json');
  return {
    dir,
    store,
    env: { PATH: `${bin}:${process.env.PATH}`, TSGTEST_STORE: store },
    cleanup: () => removeDir(dir),
  };
}

const stored = (h: HelperEnv): Record<string, { Username: string; Secret: string }> =>
  fs.existsSync(h.store) ? JSON.parse(fs.readFileSync(h.store, 'utf8')) : {};

describe('credential helper protocol (library)', () => {
  let h: HelperEnv;
  let helper: CredentialHelper;
  before(() => {
    h = installHelper();
    helper = new CredentialHelper('tsgtest', { ...process.env, ...h.env });
  });
  after(() => {
    setHelperTimeoutForTests(undefined);
    h.cleanup();
  });

  it('store, get, list, erase round trip; a missing entry is undefined, not an error', async () => {
    assert.equal(await helper.get('127.0.0.1:1'), undefined);
    await helper.store('127.0.0.1:1', { username: 'u', password: 'p:w' });
    assert.deepEqual(await helper.get('127.0.0.1:1'), { username: 'u', password: 'p:w' });
    assert.deepEqual(await helper.list(), { '127.0.0.1:1': 'u' });
    assert.equal(await helper.erase('127.0.0.1:1'), true);
    assert.equal(await helper.erase('127.0.0.1:1'), false);
    assert.equal(await helper.get('127.0.0.1:1'), undefined);
  });

  const misbehaving = (mode: string) => new CredentialHelper('tsgtest', { ...process.env, ...h.env, TSGTEST_MODE: mode });
  const expectAuthLine = async (p: Promise<unknown>, pattern: RegExp) => {
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof TsgraphError);
      assert.equal(err.code, 'TSG_AUTH_FAILED');
      assert.match(err.message, pattern);
      assert.doesNotMatch(err.message, /topsecret/, 'the secret never appears in an error');
      assert.doesNotMatch(String((err as { cause?: unknown }).cause ?? ''), /topsecret/);
      assert.equal(err.message.includes('\n'), false, 'one line');
      return true;
    });
  };

  it('garbage, a failure quoting the secret, a flood and a hang are one bounded TSG_AUTH_FAILED line without the secret', async () => {
    await helper.store('127.0.0.1:2', { username: 'u', password: 'topsecret' });
    await expectAuthLine(misbehaving('garbage').get('127.0.0.1:2'), /docker-credential-tsgtest get failed: its answer is not JSON/);
    await expectAuthLine(misbehaving('fail').get('127.0.0.1:2'), /get failed: exit status 3 \(its \d+-byte message is not repeated/);
    await expectAuthLine(misbehaving('fail').store('127.0.0.1:2', { username: 'u', password: 'topsecret' }), /store failed: exit status 3 \(its \d+-byte message is not repeated/);
    await expectAuthLine(misbehaving('flood').get('127.0.0.1:2'), /printed more than/);
    setHelperTimeoutForTests(500);
    const t0 = Date.now();
    await expectAuthLine(misbehaving('hang').get('127.0.0.1:2'), /no answer within/);
    assert.ok(Date.now() - t0 < 5000, 'a hanging helper is killed at the limit');
    setHelperTimeoutForTests(undefined);
  });

  it('a helper missing from PATH, or a name that is a path, is refused in one line', async () => {
    await expectAuthLine(new CredentialHelper('tsgnosuch', { PATH: '/nonexistent' }).get('x'), /docker-credential-tsgnosuch get failed: not found in PATH/);
    assert.throws(() => new CredentialHelper('../evil'), (err: TsgraphError) => err.code === 'TSG_USAGE');
  });
});

/**
 * Shell-script helpers that leave a background grandchild (`sleep <marker> &`)
 * holding their stdout/stderr. The marker is a sleep length unique to this run
 * so `pgrep -f` finds exactly our leftovers.
 */
const MARK = `${1000 + (process.pid % 1000)}.${Date.now() % 1_000_000}`;
const pids = (marker: string): number[] => {
  const r = spawnSync('pgrep', ['-f', `sleep ${marker.replace(/\./g, '\\.')}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
};
const killLeftovers = (marker: string) => {
  for (const pid of pids(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
};
/** Settles p, or fails after ms (the unfixed code never settled: the test must not hang). */
const within = <T>(p: Promise<T>, ms: number): Promise<T> => {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`still pending after ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
};
const gone = async (marker: string) => {
  for (let i = 0; i < 20 && pids(marker).length; i++) await new Promise((r) => setTimeout(r, 50));
  return pids(marker);
};

describe('credential helper process group', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const script = (name: string, body: string) => fs.writeFileSync(join(dir, 'bin', `docker-credential-${name}`), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  before(() => {
    dir = makeTempDir('tsgraph-credhelper-pg-');
    fs.mkdirSync(join(dir, 'bin'));
    env = { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` };
    // Answers, exits 0, leaves a grandchild holding the pipes.
    script('tsgbg', `cat >/dev/null\nsleep ${MARK}1 &\nprintf '%s' '{"ServerURL":"x","Username":"u","Secret":"s"}'\nexit 0`);
    // Never answers; its grandchild holds the pipes too.
    script('tsghang', `sleep ${MARK}2 &\nsleep ${MARK}3\n`);
    // Answers after a while (the abort test aborts it first).
    script('tsgslow', `sleep ${MARK}4 &\nsleep ${MARK}5\n`);
  });
  after(() => {
    setHelperTimeoutForTests(undefined);
    for (const m of ['1', '2', '3', '4', '5']) killLeftovers(MARK + m);
    removeDir(dir);
  });

  it('a helper that answers and exits but leaves a background grandchild settles in time and leaves no process behind', async () => {
    setHelperTimeoutForTests(2000);
    const t0 = Date.now();
    const creds = await within(new CredentialHelper('tsgbg', env).get('x'), 3000);
    assert.ok(Date.now() - t0 < 3000, `settled in ${Date.now() - t0} ms`);
    assert.deepEqual(creds, { username: 'u', password: 's' });
    assert.deepEqual(await gone(MARK + '1'), [], 'the grandchild was killed with the helper\'s process group');
  });

  it('a hanging helper with a grandchild is rejected at the limit and its whole group is killed', async () => {
    setHelperTimeoutForTests(1000);
    const t0 = Date.now();
    await assert.rejects(within(new CredentialHelper('tsghang', env).get('x'), 2000), (err: unknown) => {
      assert.ok(err instanceof TsgraphError, String(err));
      assert.equal(err.code, 'TSG_AUTH_FAILED');
      assert.match(err.message, /no answer within/);
      return true;
    });
    assert.ok(Date.now() - t0 < 2000, `settled in ${Date.now() - t0} ms`);
    assert.deepEqual(await gone(MARK + '2'), []);
    assert.deepEqual(await gone(MARK + '3'), []);
  });

  it('CLI logout through a credsStore helper that leaves a grandchild exits in time and leaves nothing behind', async () => {
    const sb = makeSandbox();
    try {
      fs.writeFileSync(join(sb.dockerConfigDir, 'config.json'), JSON.stringify({ credsStore: 'tsgbg' }));
      const t0 = Date.now();
      const r = await runCli(['logout', '127.0.0.1:9'], { ...sb.env, PATH: env.PATH }, 15_000);
      assert.equal(r.signal, null, `logout hung and was killed after ${Date.now() - t0} ms`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await gone(MARK + '1'), []);
    } finally {
      sb.cleanup();
    }
  });

  it('SIGINT to a CLI waiting on a hanging helper ends the CLI and kills the helper and its grandchild', async () => {
    const sb = makeSandbox();
    try {
      fs.writeFileSync(join(sb.dockerConfigDir, 'config.json'), JSON.stringify({ credsStore: 'tsghang' }));
      const child = spawnCli(['logout', '127.0.0.1:9'], { ...sb.env, PATH: env.PATH });
      const closed = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      for (let i = 0; i < 200 && pids(MARK + '3').length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(pids(MARK + '3').length, 1, 'the helper runs');
      child.kill('SIGINT');
      const code = await closed;
      clearTimeout(killer);
      assert.notEqual(code, null, 'the CLI ended on SIGINT (not killed by the test)');
      assert.deepEqual(await gone(MARK + '2'), [], 'the grandchild is killed');
      assert.deepEqual(await gone(MARK + '3'), [], 'the helper is killed');
    } finally {
      killLeftovers(MARK + '2');
      killLeftovers(MARK + '3');
      sb.cleanup();
    }
  });

  it('an AbortSignal kills the helper group and rejects with TSG_ABORTED at once', async () => {
    setHelperTimeoutForTests(30_000);
    const ac = new AbortController();
    const p = new CredentialHelper('tsgslow', env).get('x', ac.signal);
    for (let i = 0; i < 40 && pids(MARK + '5').length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(pids(MARK + '5').length, 1, 'the helper runs');
    const t0 = Date.now();
    ac.abort();
    await assert.rejects(within(p, 2000), (err: unknown) => err instanceof TsgraphError && err.code === 'TSG_ABORTED');
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual(await gone(MARK + '4'), []);
    assert.deepEqual(await gone(MARK + '5'), []);
  });
});

for (const variant of ['basic', 'token'] as const) {
  describe(`credential helper with a ${variant} registry`, () => {
    let reg: TestRegistry;
    let sb: Sandbox;
    let h: HelperEnv;
    let env: Record<string, string>;
    const configFile = () => join(sb.dockerConfigDir, 'config.json');
    before(async () => {
      reg = await startRegistry(variant);
      sb = makeSandbox();
      h = installHelper();
      env = { ...sb.env, ...h.env };
      const c = new RegistryClient({ credentials: new CredentialStore({ creds: { username: TEST_USER, password: TEST_PASSWORD } }) });
      await pushImages(c, reg.host, 'private/app', 'v1', [makeImage({ layers: [await makeLayer([{ path: 'f', content: 'x' }])] })]);
      c.close();
    });
    after(async () => {
      await reg?.stop();
      sb?.cleanup();
      h?.cleanup();
    });

    it('login stores through credsStore (nothing secret in config.json), a pull gets them from the helper, logout erases', async () => {
      fs.writeFileSync(configFile(), JSON.stringify({ credsStore: 'tsgtest', auths: { [reg.host]: { auth: Buffer.from('stale:old').toString('base64') } } }));
      const r = await runCli(['login', reg.host, '-u', TEST_USER, '--password-stdin', '--json'], env, 60_000, `${TEST_PASSWORD}\n`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).config, 'docker-credential-tsgtest');
      assert.deepEqual(stored(h)[reg.host], { Username: TEST_USER, Secret: TEST_PASSWORD });
      const text = fs.readFileSync(configFile(), 'utf8');
      assert.equal(text.includes(Buffer.from(`${TEST_USER}:`).toString('base64').slice(0, 8)), false);
      assert.equal(JSON.parse(text).auths[reg.host], undefined, 'the stale plain-text entry is dropped');
      assert.equal(JSON.parse(text).credsStore, 'tsgtest');

      const pull = await runCli(['pull', '-q', `${reg.host}/private/app:v1`], env);
      assert.equal(pull.code, 0, pull.stderr);
      assert.match(fs.readFileSync(h.store + '.log', 'utf8'), new RegExp(`^get ${reg.host.replace(/\./g, '\\.')}$`, 'm'));

      const out = await runCli(['logout', reg.host], env);
      assert.match(out.stdout, /Removed login credentials/);
      assert.equal(stored(h)[reg.host], undefined);
      const again = await runCli(['pull', '-q', `${reg.host}/private/app:v1`], { ...env, TSGRAPH_ROOT: sb.newRoot('after-logout') });
      assert.equal(again.code, 4, 'without stored credentials the private repo is refused');
    });

    it('credHelpers for the host wins over credsStore; a broken helper is one TSG_AUTH_FAILED line', async () => {
      fs.writeFileSync(h.store, JSON.stringify({ [reg.host]: { Username: TEST_USER, Secret: TEST_PASSWORD } }));
      fs.writeFileSync(configFile(), JSON.stringify({ credsStore: 'tsgnosuch', credHelpers: { [reg.host]: 'tsgtest' } }));
      const pull = await runCli(['pull', '-q', `${reg.host}/private/app:v1`], { ...env, TSGRAPH_ROOT: sb.newRoot('credhelpers') });
      assert.equal(pull.code, 0, pull.stderr);

      const bad = await runCli(['pull', '--json', `${reg.host}/private/app:v1`], { ...env, TSGRAPH_ROOT: sb.newRoot('garbage'), TSGTEST_MODE: 'garbage' });
      assert.equal(bad.code, 4, bad.stderr);
      const err = JSON.parse(bad.stdout || bad.stderr);
      assert.equal(JSON.stringify(err).includes(TEST_PASSWORD), false);
      assert.match(bad.stdout + bad.stderr, /TSG_AUTH_FAILED/);

      fs.writeFileSync(configFile(), JSON.stringify({ credsStore: 'tsgnosuch' }));
      const missing = await runCli(['pull', `${reg.host}/private/app:v1`], { ...env, TSGRAPH_ROOT: sb.newRoot('missing') });
      assert.equal(missing.code, 4);
      assert.match(missing.stderr, /^tsgraph: credential helper docker-credential-tsgnosuch get failed: not found in PATH.*\(TSG_AUTH_FAILED\)\n$/);
    });
  });
}
