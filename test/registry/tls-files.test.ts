/**
 * TLS files named by registries.json (ca, clientCert, clientKey) and found in
 * certs.d are read without trusting what the path is: a FIFO (which a plain
 * read waits on forever), /dev/zero (endless) or a directory is refused in one
 * line naming the file, within seconds; a symlink to a regular file is still
 * followed (certs.d entries and /etc/ssl/certs are commonly links). The CLI
 * runs in a subprocess with a kill timer, so the unfixed code (which blocked
 * the event loop in readFileSync) fails here instead of hanging the runner.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HostsConfig } from '../../src/registry/registries-config.js';
import { TsgraphError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

const HOST = 'tsg-tls-files.invalid';

describe('TLS files: only regular files, capped, one line', () => {
  let sb: Sandbox;
  before(() => {
    sb = makeSandbox();
    execFileSync('mkfifo', [join(sb.configDir, 'ca.fifo')]);
    fs.writeFileSync(join(sb.configDir, 'real.crt'), '-----BEGIN CERTIFICATE-----\n');
    fs.symlinkSync(join(sb.configDir, 'real.crt'), join(sb.configDir, 'link.crt'));
  });
  after(() => sb?.cleanup());

  const pull = (extraEnv: Record<string, string> = {}) =>
    runCli(['pull', '--no-unpack', `${HOST}/app:v1`], { ...sb.env, ...extraEnv, TSGRAPH_ROOT: sb.newRoot(`r${Date.now()}`) }, 10_000);

  it('a FIFO as ca in registries.json is one TSG_USAGE line naming it, within seconds', async () => {
    fs.writeFileSync(join(sb.configDir, 'registries.json'), JSON.stringify({ registries: { [HOST]: { ca: 'ca.fifo' } } }));
    const t0 = Date.now();
    const r = await pull();
    assert.equal(r.signal, null, `the CLI hung and was killed after ${Date.now() - t0} ms`);
    assert.match(r.stderr, /^tsgraph: registry config .*registries\.json: CA file .*ca\.fifo: not a regular file.*\(TSG_USAGE\)\n$/);
    fs.rmSync(join(sb.configDir, 'registries.json'));
  });

  it('/dev/zero as a client certificate or key, and a directory as ca, are refused (library)', () => {
    const refused = (host: object, pattern: RegExp) =>
      assert.throws(() => new HostsConfig({ registries: { [HOST]: host } }, 'test', sb.configDir), (err: unknown) => {
        assert.ok(err instanceof TsgraphError, String(err));
        assert.equal(err.code, 'TSG_USAGE');
        assert.match(err.message, pattern);
        assert.equal(err.message.includes('\n'), false);
        return true;
      });
    refused({ clientCert: '/dev/zero', clientKey: 'real.crt' }, /client certificate \/dev\/zero: not a regular file/);
    refused({ clientCert: 'real.crt', clientKey: '/dev/zero' }, /client key \/dev\/zero: not a regular file/);
    refused({ ca: ['real.crt', '.'] }, /CA file .*: not a regular file/);
    // A symlink to a regular file is followed.
    assert.ok(new HostsConfig({ registries: { [HOST]: { ca: 'link.crt' } } }, 'test', sb.configDir).tls(HOST));
  });

  it('a FIFO or /dev/zero in certs.d is one TSG_TLS line naming it, within seconds', async () => {
    const dir = join(sb.configDir, 'certs.d', HOST);
    fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync('/dev/zero', join(dir, 'client.cert'));
    let r = await pull();
    assert.equal(r.signal, null, 'the CLI hung and was killed');
    assert.match(r.stderr, /^tsgraph: TLS file .*client\.cert \(certs\.d of tsg-tls-files\.invalid\): not a regular file.*\(TSG_TLS\)\n$/);
    fs.rmSync(join(dir, 'client.cert'));
    execFileSync('mkfifo', [join(dir, 'ca.crt')]);
    r = await pull();
    assert.equal(r.signal, null, 'the CLI hung and was killed');
    assert.match(r.stderr, /^tsgraph: TLS file .*ca\.crt \(certs\.d of tsg-tls-files\.invalid\): not a regular file.*\(TSG_TLS\)\n$/);
    fs.rmSync(dir, { recursive: true });
  });
});
