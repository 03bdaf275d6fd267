/**
 * A pull-through cache: Debian's docker-registry (CNCF distribution) in
 * proxy mode (`proxy: remoteurl:`) on 127.0.0.1 in front of an upstream
 * registry, with its own temp storage. stop() and start() end and restart
 * the same mirror (same port, same cache) so that a test can take it down
 * and bring it back; remove() ends it for good and deletes its files.
 * startDistribution also makes registries registry.ts has no variant for
 * (TLS that requires a client certificate).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, makeTempDir, removeDir } from './tmp.js';
import { registryConfigLines } from './registry.js';

const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface TestMirror {
  /** host:port of the mirror, as written in registries.json. */
  host: string;
  /** Where the mirror caches what it fetched. */
  storage: string;
  /** Blob digests (hex) the mirror has cached. */
  cachedBlobs(): string[];
  start(): Promise<void>;
  stop(): Promise<void>;
  remove(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

async function listening(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts a proxy-mode registry caching `upstream` (`http://127.0.0.1:PORT`). */
export function startMirror(upstream: string, remote: { username: string; password: string } | undefined = undefined): Promise<TestMirror> {
  return startDistribution({ proxy: { remoteurl: upstream, ...remote } });
}

export interface DistributionOptions {
  /** Proxy (pull-through cache) mode, with the upstream's credentials if it needs them. */
  proxy?: { remoteurl: string; username?: string; password?: string };
  /** Serve TLS; with clientCa, refuse clients without a certificate signed by it (mTLS). */
  tls?: { cert: string; key: string; clientCa?: string };
}

/** Starts a docker-registry configured by `options`. */
export async function startDistribution(options: DistributionOptions): Promise<TestMirror> {
  const dir = makeTempDir('tsgraph-mirror-');
  const port = await freePort();
  const storage = join(dir, 'storage');
  fs.mkdirSync(storage);
  const lines = registryConfigLines(storage, port);
  const { proxy, tls } = options;
  if (tls) {
    lines.push('  tls:', `    certificate: ${tls.cert}`, `    key: ${tls.key}`);
    if (tls.clientCa) lines.push('    clientcas:', `      - ${tls.clientCa}`);
  }
  if (proxy) {
    lines.push('proxy:', `  remoteurl: ${proxy.remoteurl}`);
    if (proxy.username) lines.push(`  username: ${proxy.username}`, `  password: ${JSON.stringify(proxy.password ?? '')}`);
  }
  const configPath = join(dir, 'config.yml');
  fs.writeFileSync(configPath, lines.join('\n') + '\n');
  const logPath = join(dir, 'registry.log');
  let child: ChildProcess | undefined;

  const mirror: TestMirror = {
    host: `127.0.0.1:${port}`,
    storage,
    cachedBlobs() {
      const blobs = join(storage, 'docker', 'registry', 'v2', 'blobs', 'sha256');
      if (!fs.existsSync(blobs)) return [];
      const out: string[] = [];
      for (const prefix of fs.readdirSync(blobs)) {
        for (const hex of fs.readdirSync(join(blobs, prefix))) if (fs.existsSync(join(blobs, prefix, hex, 'data'))) out.push(hex);
      }
      return out.sort();
    },
    async start() {
      const log = fs.openSync(logPath, 'a');
      const c = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', log, log] });
      fs.closeSync(log);
      child = c;
      live.add(c);
      for (let i = 0; i < 200; i++) {
        if (c.exitCode !== null) throw new Error(`mirror exited with ${c.exitCode}: ${fs.readFileSync(logPath, 'utf8').slice(-2000)}`);
        if (await listening(port)) return;
        await sleep(50);
      }
      c.kill('SIGKILL');
      throw new Error(`mirror did not listen on ${port} within 10 s`);
    },
    async stop() {
      const c = child;
      child = undefined;
      if (!c) return;
      if (c.exitCode === null) {
        const exited = new Promise((resolve) => c.once('exit', resolve));
        c.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
        if (c.exitCode === null) {
          c.kill('SIGKILL');
          await Promise.race([new Promise((resolve) => c.once('exit', resolve)), sleep(5000)]);
        }
      }
      live.delete(c);
    },
    async remove() {
      await mirror.stop();
      removeDir(dir);
    },
  };
  try {
    await mirror.start();
  } catch (err) {
    removeDir(dir);
    throw err;
  }
  return mirror;
}
