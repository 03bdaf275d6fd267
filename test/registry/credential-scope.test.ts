/**
 * Issue 8, defect 4: registry credentials go only to the registry's own
 * origin, and to a token realm that is https or plain http on the
 * registry's own host. 127.0.0.2 plays "another host" (a second loopback
 * address), reached through fault proxies that log every Authorization
 * header they receive.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/digest.js';
import { TsgraphError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { type CredentialScope, mayReceiveCredentials } from '../../src/registry/credential-scope.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { login } from '../../src/registry/login.js';
import { makeTlsFiles } from '../helpers/certs.js';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type BuiltImage, makeImage, makeLayer, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

const creds = { username: TEST_USER, password: TEST_PASSWORD };
const BASIC = `Basic ${Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64')}`;
const withCreds = (extra: ConstructorParameters<typeof RegistryClient>[0] = {}) =>
  new RegistryClient({ ...extra, credentials: new CredentialStore({ creds }) });

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<TsgraphError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TsgraphError, String(err));
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('the credential rule (mayReceiveCredentials)', () => {
  const http1: CredentialScope = { origin: 'http://127.0.0.1:5000', hostname: '127.0.0.1', httpAllowed: true };
  const https1: CredentialScope = { origin: 'https://reg.example', hostname: 'reg.example', httpAllowed: false };
  const cases: Array<[CredentialScope, 'registry' | 'token-realm', string, boolean, string?]> = [
    [http1, 'registry', 'http://127.0.0.1:5000/v2/x/blobs/uploads/1', true],
    [http1, 'registry', 'http://127.0.0.1:5001/v2/x/blobs/uploads/1', false],
    [http1, 'registry', 'http://127.0.0.2:5000/v2/x/blobs/uploads/1', false],
    [http1, 'registry', 'https://127.0.0.1:5000/v2/', false],
    [http1, 'token-realm', 'http://127.0.0.1:9999/token', true],
    [http1, 'token-realm', 'http://127.0.0.2:9999/token', false],
    [http1, 'token-realm', 'https://127.0.0.2:9999/token', true],
    [https1, 'token-realm', 'https://auth.example/token', true],
    [https1, 'token-realm', 'http://reg.example/token', false], // http not allowed for this registry
    [https1, 'token-realm', 'ftp://reg.example/token', false],
    [http1, 'token-realm', 'http://127.0.0.1:9999/token', false, 'http://127.0.0.1:8888/token'], // a redirect hop elsewhere
  ];
  for (const [scope, use, target, expected, addressed] of cases) {
    it(`${use} ${target}${addressed ? ` (addressed ${addressed})` : ''} from ${scope.origin}: ${expected ? 'yes' : 'no'}`, () => {
      assert.equal(mayReceiveCredentials(scope, use, new URL(target), addressed ? new URL(addressed) : undefined), expected);
    });
  }
});

describe('credentials stay with the registry (defect 4)', () => {
  let tokenReg: TestRegistry;
  let basicReg: TestRegistry;
  let sb: Sandbox;
  let image: BuiltImage;
  const proxies: FaultProxy[] = [];
  const proxy = async (opts: Parameters<typeof startFaultProxy>[0]) => {
    const p = await startFaultProxy(opts);
    proxies.push(p);
    return p;
  };
  const realmHost = () => new URL(tokenReg.token!.realm).host;
  /** A proxy in front of the token registry whose challenges name `realm` instead of the real token server. */
  const frontWithRealm = async (realm: string) => {
    const front = await proxy({ upstream: tokenReg.host });
    front.rules.push({ path: /^\/v2\//, fault: { kind: 'rewrite', header: 'www-authenticate', from: tokenReg.token!.realm, to: realm } });
    return front;
  };

  before(async () => {
    [tokenReg, basicReg] = await Promise.all([startRegistry('token'), startRegistry('basic')]);
    sb = makeSandbox();
    image = makeImage({ layers: [await makeLayer([{ path: 'secret.txt', content: 'private bytes' }])] });
    const c = withCreds();
    try {
      await pushImages(c, tokenReg.host, 'private/app', 'v1', [image]);
      await pushImages(c, tokenReg.host, 'public/app', 'v1', [image]);
      await pushImages(c, basicReg.host, 'up/base', 'v1', [image]);
    } finally {
      c.close();
    }
  });
  after(async () => {
    for (const p of proxies) await p.stop();
    await Promise.all([tokenReg?.stop(), basicReg?.stop()]);
    sb?.cleanup();
  });

  it('a plain-http realm on the registry\'s own host (another port) gets the Basic credentials', async () => {
    tokenReg.token!.authorizations.length = 0;
    const c = withCreds();
    try {
      await c.getManifest(tokenReg.host, 'private/app', 'v1');
    } finally {
      c.close();
    }
    assert.ok(tokenReg.token!.authorizations.length > 0);
    assert.ok(tokenReg.token!.authorizations.every((a) => a === BASIC));
  });

  it('a plain-http realm on another host (127.0.0.2) is asked anonymously: no credentials leave', async () => {
    const realm = await proxy({ upstream: realmHost(), bind: '127.0.0.2' });
    const front = await frontWithRealm(`http://${realm.host}/token`);
    const c = withCreds();
    try {
      // Public content still works through the untrusted realm, with an anonymous token.
      const m = await c.getManifest(front.host, 'public/app', 'v1');
      assert.equal(m.digest, image.manifest.digest);
      // Private content fails, saying why, without having sent the password.
      await rejectsWith(c.getManifest(front.host, 'private/app', 'v1'), 'TSG_AUTH_REQUIRED', /not sent to the token service at 127\.0\.0\.2:\d+: it is plain http on another host/);
    } finally {
      c.close();
    }
    // login must not report success on the strength of an anonymous token.
    await rejectsWith(login(front.host, creds, { configPath: join(sb.dir, 'login-config.json') }), 'TSG_AUTH_REQUIRED', /not sent to the token service/);
    assert.equal(fs.existsSync(join(sb.dir, 'login-config.json')), false);
    // The CLI says it in one line, exit 4 (auth).
    const r = await runCli(['pull', `${front.host}/private/app:v1`, '--creds', `${TEST_USER}:${TEST_PASSWORD}`, '--json'], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('untrusted-realm') });
    assert.equal(r.code, 4, r.stderr);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_AUTH_REQUIRED');

    const tokenGets = realm.log.filter((l) => l.path.startsWith('/token'));
    assert.ok(tokenGets.length >= 3, `the realm was asked (${tokenGets.length} requests)`);
    assert.deepEqual(tokenGets.map((l) => l.authorization), tokenGets.map(() => undefined), 'zero Authorization headers at 127.0.0.2');
  });

  it('an https realm on another host gets the credentials (TLS verified)', async () => {
    const tls = makeTlsFiles(join(sb.dir, 'realm-tls'));
    const realm = await proxy({ upstream: realmHost(), bind: '127.0.0.2', tls: { cert: tls.serverCert, key: tls.serverKey } });
    const certsDir = join(sb.dir, 'realm-config', 'certs.d', realm.host);
    fs.mkdirSync(certsDir, { recursive: true });
    fs.copyFileSync(tls.caCert, join(certsDir, 'ca.crt'));
    const front = await frontWithRealm(`https://${realm.host}/token`);
    const c = withCreds({ configDirs: [join(sb.dir, 'realm-config')] });
    try {
      const m = await c.getManifest(front.host, 'private/app', 'v1');
      assert.equal(m.digest, image.manifest.digest);
    } finally {
      c.close();
    }
    const tokenGets = realm.log.filter((l) => l.path.startsWith('/token'));
    assert.ok(tokenGets.length >= 1);
    assert.ok(tokenGets.every((l) => l.authorization === BASIC), 'the https realm got the Basic credentials');
  });

  it('an upload Location on another host gets no Authorization on PATCH and PUT', async () => {
    // The "storage host" holds its own credentials for the registry behind it.
    const side = await proxy({ upstream: basicReg.host, bind: '127.0.0.2', upstreamAuth: BASIC });
    const front = await proxy({ upstream: basicReg.host });
    front.rules.push({ method: 'POST', path: /\/blobs\/uploads\/$/, fault: { kind: 'rewrite', header: 'location', from: `//${front.host}/`, to: `//${side.host}/` } });
    const data = Buffer.concat([Buffer.alloc(100_000, 7), Buffer.from('tail')]);
    const digest = sha256(data);
    const c = withCreds();
    try {
      const started = await c.startUpload(front.host, 'up/moved', digest);
      assert.equal(started.mounted, false);
      const location = (started as { location: string }).location;
      assert.equal(new URL(location).host, side.host, 'the registry (as rewritten) handed the upload to 127.0.0.2');
      const next = await c.uploadChunk(front.host, 'up/moved', location, data.subarray(0, 60_000), 0);
      await c.finishUpload(front.host, 'up/moved', next, digest, data.subarray(60_000));
      assert.equal(await c.hasBlob(front.host, 'up/moved', digest), true, 'the upload completed');
    } finally {
      c.close();
    }
    const writes = side.log.filter((l) => l.method === 'PATCH' || l.method === 'PUT');
    assert.deepEqual(writes.map((l) => l.method), ['PATCH', 'PUT']);
    assert.deepEqual(writes.map((l) => l.authorization), [undefined, undefined]);
    assert.ok(front.log.filter((l) => l.method === 'POST').every((l) => l.authorization === BASIC), 'the registry itself got them');
  });

  it('a token bought for one registry is not handed to another that names the same realm', async () => {
    // The second "registry" (a proxy on another origin) sends the very same challenge;
    // the user's stored password for it is a different one.
    const other = await proxy({ upstream: tokenReg.host });
    const config = join(sb.dir, 'two-registries.json');
    const auth = (p: string) => ({ auth: Buffer.from(`${TEST_USER}:${p}`).toString('base64') });
    fs.writeFileSync(config, JSON.stringify({ auths: { [tokenReg.host]: auth(TEST_PASSWORD), [other.host]: auth('not-the-password') } }));
    const c = new RegistryClient({ credentials: new CredentialStore({ dockerConfig: config }) });
    try {
      await c.getManifest(tokenReg.host, 'private/app', 'v1'); // a token for this scope is now cached
      await rejectsWith(c.getManifest(other.host, 'private/app', 'v1'), 'TSG_AUTH_FAILED');
    } finally {
      c.close();
    }
    const bearers = other.log.filter((l) => l.authorization?.startsWith('Bearer '));
    assert.deepEqual(bearers, [], 'no token minted with the first registry\'s password reached the second');
  });

  it('manifest GET and blob HEAD redirected to another host get no Authorization', async () => {
    const cdn = await proxy({ upstream: basicReg.host, bind: '127.0.0.2', upstreamAuth: BASIC });
    const front = await proxy({ upstream: basicReg.host });
    front.rules.push({ method: 'GET', path: /\/manifests\//, fault: { kind: 'redirect', to: cdn.host } });
    front.rules.push({ method: 'HEAD', path: /\/blobs\//, fault: { kind: 'redirect', to: cdn.host } });
    const c = withCreds();
    try {
      assert.equal((await c.getManifest(front.host, 'up/base', 'v1')).digest, image.manifest.digest);
      assert.equal(await c.hasBlob(front.host, 'up/base', image.layers[0]!.digest), true);
    } finally {
      c.close();
    }
    const hops = cdn.log.filter((l) => l.path.includes('/manifests/') || l.path.includes('/blobs/'));
    assert.deepEqual(hops.map((l) => l.method).sort(), ['GET', 'HEAD']);
    assert.deepEqual(hops.map((l) => l.authorization), [undefined, undefined]);
  });
});
