/**
 * Mirrors and short names from registries.json, against real registries:
 *  - a real distribution registry in proxy (pull-through cache) mode in
 *    front of the test registry: the first pull through it fills its cache;
 *    with the mirror down a pull falls back to the upstream; with the
 *    upstream stopped a fresh root still pulls through the mirror; a push
 *    goes to the upstream, never the mirror;
 *  - credentials: a mirror never receives the upstream's credentials (from
 *    docker's config.json or --creds), only credentials stored for the
 *    mirror itself (a recording server stands in for a private mirror);
 *  - unqualified-search registries: a short name tries them in order and
 *    says which one it used;
 *  - per-host TLS: a CA and a client certificate (mTLS) from registries.json
 *    against a registry that requires one;
 *  - a malformed registries.json is one TSG_USAGE line.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TsgraphError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { makeImage, makeLayer, pushImages } from '../helpers/image-builder.js';
import { makeTlsFiles } from '../helpers/certs.js';
import { type TestMirror, startDistribution, startMirror } from '../helpers/mirror.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

function writeRegistriesJson(sb: Sandbox, config: unknown): void {
  fs.writeFileSync(join(sb.configDir, 'registries.json'), JSON.stringify(config));
}

describe('mirror: a pull-through cache (distribution in proxy mode) in front of the registry', () => {
  let upstream: TestRegistry;
  let mirror: TestMirror;
  let sb: Sandbox;
  let ref: string;
  let layerHexes: string[];
  let manifestDigest: string;
  before(async () => {
    upstream = await startRegistry('plain');
    mirror = await startMirror(`http://${upstream.host}`);
    sb = makeSandbox();
    const c = new RegistryClient();
    const image = makeImage({ layers: [await makeLayer([{ path: 'a', content: 'one' }]), await makeLayer([{ path: 'b', content: 'two' }])] });
    await pushImages(c, upstream.host, 'lib/app', 'v1', [image]);
    c.close();
    layerHexes = image.layers.map((l) => l.digest.slice('sha256:'.length));
    manifestDigest = image.manifest.digest;
    ref = `${upstream.host}/lib/app:v1`;
    writeRegistriesJson(sb, { registries: { [upstream.host]: { mirrors: [mirror.host] } } });
  });
  after(async () => {
    await mirror?.remove();
    await upstream?.stop();
    sb?.cleanup();
  });

  it('the first pull goes through the mirror and fills its cache', async () => {
    assert.deepEqual(mirror.cachedBlobs(), []);
    const r = await runCli(['pull', '--json', '--no-unpack', ref], sb.env);
    assert.equal(r.code, 0, r.stderr);
    const out = parseJsonOutput<{ name: string; manifestDigest: string }>(r);
    assert.equal(out.name, ref, 'the image keeps its upstream name');
    assert.equal(out.manifestDigest, manifestDigest);
    const cached = mirror.cachedBlobs();
    for (const hex of layerHexes) assert.ok(cached.includes(hex), `layer ${hex.slice(0, 12)} cached by the mirror`);
  });

  it('with the mirror down, a pull falls back to the upstream (without waiting out retries)', async () => {
    await mirror.stop();
    const t0 = Date.now();
    const r = await runCli(['pull', '--json', '--no-unpack', ref], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('mirror-down') });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseJsonOutput<{ manifestDigest: string }>(r).manifestDigest, manifestDigest);
    // A down mirror is asked once per host, not retried with backoff (5 attempts would take > 10 s).
    assert.ok(Date.now() - t0 < 30_000);
  });

  it('a push goes to the upstream even when a mirror is configured', async () => {
    const r = await runCli(['push', ref, `${upstream.host}/lib/pushed:v1`], sb.env);
    assert.equal(r.code, 0, r.stderr);
    const c = new RegistryClient();
    assert.deepEqual(await c.listTags(upstream.host, 'lib/pushed'), ['v1']);
    c.close();
  });

  it('with the upstream stopped, a fresh root pulls the same image through the mirror', async () => {
    await mirror.start();
    await upstream.stop();
    const r = await runCli(['pull', '--json', ref], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('upstream-down') });
    assert.equal(r.code, 0, r.stderr);
    const out = parseJsonOutput<{ name: string; manifestDigest: string; layersUnpacked: number }>(r);
    assert.equal(out.name, ref);
    assert.equal(out.manifestDigest, manifestDigest);
    assert.equal(out.layersUnpacked, 2);
    // And nothing else could have served it: the upstream is gone.
    const direct = await runCli(['pull', '--no-unpack', ref], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('no-config'), TSGRAPH_CONFIG_DIR: sb.newRoot('empty-config') });
    assert.notEqual(direct.code, 0);
    assert.match(direct.stderr, /TSG_UNREACHABLE/);
  });
});

/** A registry stand-in that wants Basic auth for everything and records every Authorization it is sent. */
async function recordingMirror(): Promise<{ host: string; seen: string[]; hits: { count: number }; close(): Promise<void> }> {
  const seen: string[] = [];
  const hits = { count: 0 };
  const server: Server = createServer((req, res) => {
    hits.count++;
    if (req.headers.authorization) seen.push(req.headers.authorization);
    res.writeHead(401, { 'www-authenticate': 'Basic realm="mirror"', 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  return {
    host: `127.0.0.1:${addr.port}`,
    seen,
    hits,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('mirror: credentials stay with the host they were stored for', () => {
  let upstream: TestRegistry;
  let sb: Sandbox;
  let fake: Awaited<ReturnType<typeof recordingMirror>>;
  let ref: string;
  const upstreamBasic = () => `Basic ${Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64')}`;
  before(async () => {
    upstream = await startRegistry('basic');
    fake = await recordingMirror();
    sb = makeSandbox();
    const c = new RegistryClient({ credentials: new CredentialStore({ creds: { username: TEST_USER, password: TEST_PASSWORD } }) });
    await pushImages(c, upstream.host, 'private/app', 'v1', [makeImage({ layers: [await makeLayer([{ path: 'f', content: 'x' }])] })]);
    c.close();
    ref = `${upstream.host}/private/app:v1`;
    writeRegistriesJson(sb, { registries: { [upstream.host]: { mirrors: [fake.host] } } });
  });
  after(async () => {
    await upstream?.stop();
    await fake?.close();
    sb?.cleanup();
  });

  it("the upstream's stored credentials never reach the mirror; the pull falls back and succeeds", async () => {
    sb.dockerLogin(upstream.host, TEST_USER, TEST_PASSWORD);
    const before = fake.hits.count;
    const r = await runCli(['pull', '-q', '--no-unpack', ref], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('stored') });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fake.hits.count > before, 'the mirror was asked first');
    assert.deepEqual(fake.seen, [], 'the mirror was asked anonymously');
  });

  it('--creds (meant for the registry of the reference) never reach the mirror either', async () => {
    fs.rmSync(join(sb.dockerConfigDir, 'config.json'), { force: true });
    const before = fake.hits.count;
    const r = await runCli(['pull', '-q', '--no-unpack', '--creds', `${TEST_USER}:${TEST_PASSWORD}`, ref], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('explicit') });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fake.hits.count > before, 'the mirror was asked first');
    assert.deepEqual(fake.seen, []);
  });

  it("credentials stored for the mirror itself go to the mirror, and only those", async () => {
    const mirrorAuth = Buffer.from('mirror-user:mirror-pass').toString('base64');
    fs.writeFileSync(
      join(sb.dockerConfigDir, 'config.json'),
      JSON.stringify({ auths: { [upstream.host]: { auth: Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64') }, [fake.host]: { auth: mirrorAuth } } }),
    );
    const r = await runCli(['pull', '-q', '--no-unpack', ref], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('mirror-creds') });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fake.seen.length > 0, 'the mirror was offered its own credentials');
    for (const a of fake.seen) {
      assert.equal(a, `Basic ${mirrorAuth}`);
      assert.notEqual(a, upstreamBasic());
    }
  });
});

describe('registries.json: short names and validation', () => {
  let first: TestRegistry;
  let second: TestRegistry;
  let sb: Sandbox;
  before(async () => {
    first = await startRegistry('plain');
    second = await startRegistry('plain');
    sb = makeSandbox();
    const c = new RegistryClient();
    await pushImages(c, second.host, 'tools/app', 'v2', [makeImage({ layers: [await makeLayer([{ path: 's', content: 'second' }])] })]);
    c.close();
  });
  after(async () => {
    await first?.stop();
    await second?.stop();
    sb?.cleanup();
  });

  it('a short name tries the search registries in order and says which one it used', async () => {
    writeRegistriesJson(sb, { unqualifiedSearchRegistries: [first.host, second.host] });
    const r = await runCli(['pull', '--no-unpack', 'tools/app:v2'], sb.env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, new RegExp(`Resolved ${second.host.replace(/\./g, '\\.')}/tools/app:v2 \\(short name tools/app:v2\\)`));
    const images = await runCli(['images', '--json'], sb.env);
    assert.match(images.stdout, new RegExp(`${second.host.replace(/\./g, '\\.')}/tools/app`));
    const creds = await runCli(['pull', '--no-unpack', '--creds', 'u:secret', 'tools/app:v2'], sb.env);
    assert.equal(creds.code, 2, 'explicit credentials are never offered to several search registries');
    assert.match(creds.stderr, /--creds with the short name tools\/app:v2 .*give the full name \(TSG_USAGE\)/);
    const none = await runCli(['pull', '--no-unpack', 'tools/nothing:v1'], sb.env);
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /short name tools\/nothing:v1 is in none of the search registries \(tried .*\) \(TSG_REPO_NOT_FOUND\)/);
  });

  it('a malformed or mistyped registries.json is one TSG_USAGE line naming the file', async () => {
    writeRegistriesJson(sb, { registries: { [first.host]: { mirors: ['x:1'] } } });
    const r = await runCli(['pull', '--no-unpack', `${first.host}/a:b`], sb.env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^tsgraph: registry config .*registries\.json: .*mirors.*\(TSG_USAGE\)\n$/);
    fs.writeFileSync(join(sb.configDir, 'registries.json'), '{"registries": ');
    const j = await runCli(['pull', '--no-unpack', `${first.host}/a:b`], sb.env);
    assert.equal(j.code, 2);
    assert.match(j.stderr, /not valid JSON.*\(TSG_USAGE\)\n$/);
  });
});

describe('registries.json: per-host CA and client certificate (mTLS)', () => {
  let reg: TestMirror;
  let sb: Sandbox;
  let tlsDir: string;
  before(async () => {
    sb = makeSandbox();
    tlsDir = join(sb.dir, 'tls');
    const tls = makeTlsFiles(tlsDir);
    // A client certificate signed by the same CA.
    const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: tlsDir, stdio: ['ignore', 'ignore', 'pipe'] });
    ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=tsgraph client', '-keyout', 'client.key', '-out', 'client.csr']);
    fs.writeFileSync(join(tlsDir, 'client.cnf'), 'extendedKeyUsage=clientAuth\n');
    ssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'client.cnf', '-out', 'client.cert']);
    reg = await startDistribution({ tls: { cert: tls.serverCert, key: tls.serverKey, clientCa: tls.caCert } });
  });
  after(async () => {
    await reg?.remove();
    sb?.cleanup();
  });

  it('the CA and client certificate named in registries.json (relative to it) let a pull and a push through', async () => {
    // Paths relative to registries.json's directory.
    fs.cpSync(tlsDir, join(sb.configDir, 'tls'), { recursive: true });
    const hostConfig = { ca: 'tls/ca.crt', clientCert: 'tls/client.cert', clientKey: 'tls/client.key' };
    writeRegistriesJson(sb, { registries: { [reg.host]: { ca: 'tls/ca.crt' } } });
    const c = new RegistryClient({ configDirs: [sb.configDir] });
    const image = makeImage({ layers: [await makeLayer([{ path: 'm', content: 'mtls' }])] });
    await assert.rejects(pushImages(c, reg.host, 'sec/app', 'v1', [image]), (err: TsgraphError) => {
      // The CA is trusted: it is the server that ends the handshake without a client certificate.
      assert.equal(err.code, 'TSG_TLS');
      assert.match(err.message, /wants a client certificate.*clientCert\/clientKey/);
      return true;
    });
    c.close();

    writeRegistriesJson(sb, { registries: { [reg.host]: hostConfig } });
    const ok = new RegistryClient({ configDirs: [sb.configDir] });
    await pushImages(ok, reg.host, 'sec/app', 'v1', [image]);
    ok.close();
    const r = await runCli(['pull', '--json', '--no-unpack', `${reg.host}/sec/app:v1`], sb.env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseJsonOutput<{ manifestDigest: string }>(r).manifestDigest, image.manifest.digest);

    writeRegistriesJson(sb, {});
    const untrusted = await runCli(['pull', '--no-unpack', `${reg.host}/sec/app:v1`], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('no-ca') });
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /\(TSG_TLS\)\n$/);
  });
});
