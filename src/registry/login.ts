/**
 * login/logout: check credentials against a registry, then store them in
 * docker's config.json (`auths[host].auth`, base64 user:password), which
 * tsgraph, docker, podman and skopeo all read. The file is written
 * atomically with mode 0600; other entries are kept.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { DEFAULT_REGISTRY } from '../reference.js';
import { writeFileAtomic } from '../util/fs-atomic.js';
import { mkdirBounded } from '../util/private-root.js';
import { RegistryClient, type RegistryClientOptions } from './client.js';
import { CredentialStore, type Credentials, dockerConfigPath, normalizeAuthKey } from './credentials.js';

/** docker.io's conventional key in config.json. */
function configKey(registry: string): string {
  return normalizeAuthKey(registry) === DEFAULT_REGISTRY ? 'https://index.docker.io/v1/' : normalizeAuthKey(registry);
}

function readConfig(path: string): Record<string, unknown> & { auths?: Record<string, unknown> } {
  try {
    return JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

/** Options of {@link login}: how to reach the registry, and where docker's config.json is. */
export interface LoginOptions extends RegistryClientOptions {
  /** docker's config.json to write (default `$DOCKER_CONFIG/config.json`, else ~/.docker/config.json). */
  configPath?: string | undefined;
  /** Cancels the check (TSG_ABORTED); nothing is written then. */
  signal?: AbortSignal | undefined;
}

/**
 * `docker login`: verifies `creds` with `registry` (`host[:port]`; an
 * authenticated GET /v2/ through its challenge; an anonymous token proves
 * nothing and is refused), then saves them in docker's config.json (mode
 * 0600, other entries kept), which tsgraph, docker, podman and skopeo read.
 * Wrong credentials are TSG_AUTH_FAILED and write nothing. Returns the
 * config file's path.
 */
export async function login(registry: string, creds: Credentials, options: LoginOptions = {}): Promise<string> {
  const client = new RegistryClient({ ...options, credentials: new CredentialStore({ creds }) });
  try {
    await client.verifyCredentials(registry, options.signal);
  } finally {
    client.close();
  }
  const path = options.configPath ?? dockerConfigPath();
  const config = readConfig(path);
  config.auths = { ...(config.auths ?? {}), [configKey(registry)]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } };
  mkdirBounded(dirname(path), 'the docker config directory'); // a recursive mkdir spins on some procfs paths
  writeFileAtomic(path, JSON.stringify(config, null, 2) + '\n', 0o600);
  return path;
}

/**
 * `docker logout`: removes the stored credentials of `registry` from docker's
 * config.json (`configPath`, default as {@link login}). Returns false when
 * there were none. No network.
 */
export function logout(registry: string, configPath = dockerConfigPath()): boolean {
  const config = readConfig(configPath);
  const auths = { ...(config.auths ?? {}) };
  const keys = Object.keys(auths).filter((k) => normalizeAuthKey(k) === normalizeAuthKey(registry));
  if (keys.length === 0) return false;
  for (const k of keys) delete auths[k];
  writeFileAtomic(configPath, JSON.stringify({ ...config, auths }, null, 2) + '\n', 0o600);
  return true;
}

