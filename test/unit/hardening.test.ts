/**
 * Small hostile inputs outside tars: a registry streaming a huge error body,
 * an image whose /etc is a symlink to the host's.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TsgraphError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { resolveUser } from '../../src/runtime/spec.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

describe('hardening', () => {
  let server: Server;
  let host: string;
  let sent = 0;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/v2/') return res.writeHead(200).end('{}');
      // An endless 404 body: the client must stop reading.
      res.writeHead(404, { 'content-type': 'application/json' });
      res.write('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"');
      const chunk = Buffer.alloc(64 * 1024, 'a');
      const pump = () => {
        while (sent < 512 << 20 && res.write(chunk)) sent += chunk.length;
        if (sent < 512 << 20) res.once('drain', pump);
        else res.end('"}]}');
      };
      res.on('close', () => (sent = Math.max(sent, 1)));
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('a registry streaming an endless error body gets a clear error, not our memory', async () => {
    const client = new RegistryClient();
    try {
      await assert.rejects(client.getManifest(host, 'x', 'latest'), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_TAG_NOT_FOUND');
    } finally {
      client.close();
    }
    assert.ok(sent < 64 << 20, `stopped reading early (server had written ${sent} bytes)`);
  });

  it("resolving the image's user never follows its /etc symlink onto the host", () => {
    const dir = makeTempDir();
    try {
      fs.symlinkSync('/etc', join(dir, 'etc'));
      assert.throws(() => resolveUser(dir, 'root'), /not in the image's \/etc\/passwd/);
      fs.rmSync(join(dir, 'etc'));
      fs.mkdirSync(join(dir, 'etc'));
      fs.writeFileSync(join(dir, 'etc/passwd'), 'app:x:1234:99::/home/app:/bin/sh\n');
      fs.writeFileSync(join(dir, 'etc/group'), 'staff:x:50:\n');
      assert.deepEqual(resolveUser(dir, 'app'), { uid: 1234, gid: 99 });
      assert.deepEqual(resolveUser(dir, 'app:staff'), { uid: 1234, gid: 50 });
      assert.deepEqual(resolveUser(dir, '7:8'), { uid: 7, gid: 8 });
    } finally {
      removeDir(dir);
    }
  });
});
