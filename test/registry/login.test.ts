/**
 * `tsgraph login` checks credentials against the registry before storing
 * them in docker's config.json; later pulls use them without --creds;
 * `logout` removes them. Basic and token registries.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RegistryClient } from '../../src/registry/client.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { runCli } from '../helpers/cli.js';
import { makeImage, makeLayer, pushImages } from '../helpers/image-builder.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

for (const variant of ['basic', 'token'] as const) {
  describe(`login/logout (${variant} registry)`, () => {
    let reg: TestRegistry;
    let sb: Sandbox;
    before(async () => {
      reg = await startRegistry(variant);
      sb = makeSandbox();
      const c = new RegistryClient({ credentials: new CredentialStore({ creds: { username: TEST_USER, password: TEST_PASSWORD } }) });
      await pushImages(c, reg.host, 'private/app', 'v1', [makeImage({ layers: [await makeLayer([{ path: 'f', content: 'x' }])] })]);
      c.close();
    });
    after(async () => {
      await reg?.stop();
      sb?.cleanup();
    });
    const configFile = () => join(sb.dockerConfigDir, 'config.json');

    it('refuses a wrong password and stores nothing', async () => {
      const r = await runCli(['login', reg.host, '-u', TEST_USER, '--password-stdin'], sb.env, 60_000, 'wrong\n');
      assert.equal(r.code, 4);
      assert.match(r.stderr, /wrong username or password \(TSG_AUTH_FAILED\)/);
      assert.equal(fs.existsSync(configFile()), false);
    });

    it('stores working credentials (0600) that a later pull uses; logout removes them', async () => {
      fs.writeFileSync(configFile(), JSON.stringify({ auths: { 'other.example': { auth: 'eDp5' } }, credsStore: '' }));
      const r = await runCli(['login', reg.host, '-u', TEST_USER, '--password-stdin'], sb.env, 60_000, `${TEST_PASSWORD}\n`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Login Succeeded/);
      assert.equal(fs.statSync(configFile()).mode & 0o777, 0o600);
      const cfg = JSON.parse(fs.readFileSync(configFile(), 'utf8'));
      assert.ok(cfg.auths['other.example'], 'other entries are kept');
      assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), `${TEST_USER}:${TEST_PASSWORD}`);
      const pull = await runCli(['pull', '-q', `${reg.host}/private/app:v1`], sb.env);
      assert.equal(pull.code, 0, pull.stderr);
      const out = await runCli(['logout', reg.host], sb.env);
      assert.match(out.stdout, /Removed login credentials/);
      const again = await runCli(['pull', '-q', `${reg.host}/private/app:v1`], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('after-logout') });
      assert.equal(again.code, 4, 'without stored credentials the private repo is refused');
    });

    it('never takes the password from the command line', async () => {
      const r = await runCli(['login', reg.host, '-u', TEST_USER], sb.env);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--password-stdin/);
    });
  });
}
