/**
 * login/logout: check credentials against a registry, then store them where
 * docker would: through the credential helper docker's config.json names
 * for the host (`credHelpers[host]`, else `credsStore`; cred-helper.ts), or
 * else in config.json itself (`auths[host].auth`, base64 user:password),
 * which tsgraph, docker, podman and skopeo all read. The file is written
 * atomically with mode 0600; other entries are kept.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../util/fs-atomic.js';
import { mkdirBounded } from '../util/private-root.js';
import { RegistryClient, type RegistryClientOptions } from './client.js';
import { CredentialStore, type Credentials, dockerConfigPath, normalizeAuthKey, readDockerConfig, serverKey } from './credentials.js';

function readConfig(path: string): Record<string, unknown> & { auths?: Record<string, unknown> } {
  return readDockerConfig(path) as Record<string, unknown> & { auths?: Record<string, unknown> };
}

/** Drops `registry`'s entries from config.json's `auths` (rewriting the file only if there were any); true when some were dropped. */
function dropAuths(path: string, registry: string): boolean {
  if (!fs.existsSync(path)) return false;
  const config = readConfig(path);
  const auths = { ...(config.auths ?? {}) };
  const keys = Object.keys(auths).filter((k) => normalizeAuthKey(k) === normalizeAuthKey(registry));
  if (keys.length === 0) return false;
  for (const k of keys) delete auths[k];
  writeFileAtomic(path, JSON.stringify({ ...config, auths }, null, 2) + '\n', 0o600);
  return true;
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
 * Wrong credentials are TSG_AUTH_FAILED and write nothing. With a
 * credential helper configured for the host, the helper stores them (and a
 * stale plain-text entry for the host is dropped from config.json). Returns
 * where they went: the config file's path, or the helper program's name.
 */
export async function login(registry: string, creds: Credentials, options: LoginOptions = {}): Promise<string> {
  // Where they will go is settled first: a broken config.json fails before any network.
  const path = options.configPath ?? dockerConfigPath();
  const helper = new CredentialStore({ dockerConfig: path }).helperFor(registry);
  const client = new RegistryClient({ ...options, credentials: new CredentialStore({ creds }) });
  try {
    await client.verifyCredentials(registry, options.signal);
  } finally {
    client.close();
  }
  if (helper) {
    await helper.store(serverKey(registry), creds);
    dropAuths(path, registry);
    return helper.program;
  }
  const config = readConfig(path);
  config.auths = { ...(config.auths ?? {}), [serverKey(registry)]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } };
  mkdirBounded(dirname(path), 'the docker config directory'); // a recursive mkdir spins on some procfs paths
  writeFileAtomic(path, JSON.stringify(config, null, 2) + '\n', 0o600);
  return path;
}

/**
 * `docker logout`: removes the stored credentials of `registry` from the
 * credential helper configured for it (`erase`) and from docker's
 * config.json (`configPath`, default as {@link login}). Returns false when
 * there were none. No network.
 */
export async function logout(registry: string, configPath = dockerConfigPath()): Promise<boolean> {
  const helper = new CredentialStore({ dockerConfig: configPath }).helperFor(registry);
  const erased = helper ? await helper.erase(serverKey(registry)) : false;
  return dropAuths(configPath, registry) || erased;
}

