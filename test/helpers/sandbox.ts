/**
 * An isolated tsgraph environment for one test file: its own store root,
 * config dir (certs.d) and docker config dir, so nothing on the machine
 * leaks in and nothing leaks out.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { TestRegistry } from './registry.js';
import { makeTempDir, removeDir } from './tmp.js';

export interface Sandbox {
  dir: string;
  root: string;
  configDir: string;
  dockerConfigDir: string;
  env: Record<string, string>;
  /** A fresh store root inside the sandbox. */
  newRoot(name: string): string;
  /** Trusts a TLS registry's CA through certs.d, like a user would. */
  trust(reg: TestRegistry): void;
  /** Writes docker's config.json with an `auths` entry. */
  dockerLogin(host: string, user: string, password: string): void;
  cleanup(): void;
}

export function makeSandbox(): Sandbox {
  const dir = makeTempDir('tsgraph-sandbox-');
  const root = join(dir, 'root');
  const configDir = join(dir, 'config');
  const dockerConfigDir = join(dir, 'docker');
  fs.mkdirSync(configDir);
  fs.mkdirSync(dockerConfigDir);
  return {
    dir,
    root,
    configDir,
    dockerConfigDir,
    env: { TSGRAPH_ROOT: root, TSGRAPH_CONFIG_DIR: configDir, DOCKER_CONFIG: dockerConfigDir },
    newRoot(name) {
      return join(dir, `root-${name}`);
    },
    trust(reg) {
      if (!reg.tls) throw new Error('not a TLS registry');
      const d = join(configDir, 'certs.d', reg.host);
      fs.mkdirSync(d, { recursive: true });
      fs.copyFileSync(reg.tls.caCert, join(d, 'ca.crt'));
    },
    dockerLogin(host, user, password) {
      const auth = Buffer.from(`${user}:${password}`).toString('base64');
      fs.writeFileSync(join(dockerConfigDir, 'config.json'), JSON.stringify({ auths: { [host]: { auth } } }));
    },
    cleanup() {
      removeDir(dir);
    },
  };
}

/** Hex names of committed blobs in a store root. */
export function storedBlobs(root: string): string[] {
  try {
    return fs.readdirSync(join(root, 'content', 'blobs', 'sha256')).sort();
  } catch {
    return [];
  }
}

/** Ingest dirs (writes in progress) in a store root. */
export function storedIngests(root: string): string[] {
  try {
    return fs.readdirSync(join(root, 'content', 'ingest'));
  } catch {
    return [];
  }
}

/** Image record files in a store root. */
export function storedImages(root: string): string[] {
  try {
    return fs.readdirSync(join(root, 'meta', 'images')).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
}
