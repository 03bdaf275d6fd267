/**
 * Debian's docker-registry on 127.0.0.1 with its storage under the bench's
 * scratch dir (the approach of test/helpers/registry.ts, plain http only).
 */
import * as fs from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { daemon, onCleanup } from './util.js';

export interface Registry {
  host: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startRegistry(dir: string): Promise<Registry> {
  const bin = '/usr/bin/docker-registry';
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: apt-get install docker-registry`);
  fs.mkdirSync(join(dir, 'storage'), { recursive: true });
  const port = await freePort();
  const config = join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:',
      `    rootdirectory: ${join(dir, 'storage')}`, 'http:', `  addr: 127.0.0.1:${port}`].join('\n') + '\n',
  );
  const child = daemon([bin, 'serve', config], join(dir, 'registry.log'));
  const stop = onCleanup('docker-registry', async () => {
    child.kill('SIGTERM');
    for (let i = 0; i < 50 && child.exitCode === null && child.signalCode === null; i++) await sleep(100);
    child.kill('SIGKILL');
  });
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${fs.readFileSync(join(dir, 'registry.log'), 'utf8').slice(-1000)}`);
    if (await canConnect(port)) return { host: `127.0.0.1:${port}`, stop };
    await sleep(50);
  }
  throw new Error('docker-registry did not listen within 10 s');
}
