/**
 * Starts Debian's docker-registry (CNCF distribution) on 127.0.0.1 with a
 * temp storage dir, in one of four variants: plain http, Basic auth
 * (htpasswd, bcrypt), Bearer token (our token server) and TLS (self-signed
 * CA). stop() kills it by PID and removes everything it made.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type TlsFiles, makeSigningCert, makeTlsFiles } from './certs.js';
import { type TokenServer, startTokenServer } from './token-server.js';
import { freePort, makeTempDir, removeDir } from './tmp.js';

export type RegistryVariant = 'plain' | 'basic' | 'token' | 'tls';

export const TEST_USER = 'tester';
export const TEST_PASSWORD = 's3cret:with-colon';

export interface TestRegistry {
  variant: RegistryVariant;
  /** host:port, as used in references. */
  host: string;
  port: number;
  /** For TLS: the CA that signed the server certificate. */
  tls?: TlsFiles;
  token?: TokenServer;
  dir: string;
  stop(): Promise<void>;
}

const REGISTRY_BIN = '/usr/bin/docker-registry';
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

async function waitForPort(port: number, child: ChildProcess, logPath: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${fs.readFileSync(logPath, 'utf8').slice(-2000)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`docker-registry did not listen on ${port} within 10 s`);
}

/** The start of a docker-registry config.yml: quiet logs, filesystem storage, http on 127.0.0.1:port. */
export function registryConfigLines(storage: string, port: number, opts: { deletes?: boolean } = {}): string[] {
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    ...(opts.deletes ? ['  delete:', '    enabled: true'] : []),
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
}

export async function startRegistry(variant: RegistryVariant = 'plain'): Promise<TestRegistry> {
  if (!fs.existsSync(REGISTRY_BIN)) {
    throw new Error(`${REGISTRY_BIN} is missing: apt-get install docker-registry (README's test command does this)`);
  }
  const dir = makeTempDir('tsgraph-registry-');
  const port = await freePort();
  const storage = join(dir, 'storage');
  fs.mkdirSync(storage);
  const lines = registryConfigLines(storage, port, { deletes: true });
  let tls: TlsFiles | undefined;
  let token: TokenServer | undefined;
  if (variant === 'tls') {
    tls = makeTlsFiles(join(dir, 'tls'));
    lines.push('  tls:', `    certificate: ${tls.serverCert}`, `    key: ${tls.serverKey}`);
  }
  if (variant === 'basic') {
    const htpasswd = execFileSync('htpasswd', ['-Bbn', TEST_USER, TEST_PASSWORD]).toString();
    fs.writeFileSync(join(dir, 'htpasswd'), htpasswd);
    lines.push('auth:', '  htpasswd:', '    realm: tsgraph-test', `    path: ${join(dir, 'htpasswd')}`);
  }
  if (variant === 'token') {
    const signing = makeSigningCert(join(dir, 'token'));
    token = await startTokenServer({ certPath: signing.cert, keyPath: signing.key, users: { [TEST_USER]: TEST_PASSWORD } });
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${token.realm}`,
      `    service: ${token.service}`,
      `    issuer: ${token.issuer}`,
      `    rootcertbundle: ${signing.cert}`,
    );
  }
  const configPath = join(dir, 'config.yml');
  fs.writeFileSync(configPath, lines.join('\n') + '\n');
  const logPath = join(dir, 'registry.log');
  const log = fs.openSync(logPath, 'a');
  const child = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  live.add(child);
  try {
    await waitForPort(port, child, logPath);
  } catch (err) {
    child.kill('SIGKILL');
    live.delete(child);
    await token?.stop();
    removeDir(dir);
    throw err;
  }
  return {
    variant,
    host: `127.0.0.1:${port}`,
    port,
    tls,
    token,
    dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      live.delete(child);
      await token?.stop();
      removeDir(dir);
    },
  };
}
