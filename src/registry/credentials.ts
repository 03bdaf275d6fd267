/**
 * Registry credentials: `--creds user:pass` first, then docker's
 * `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
 * `auths` entries with `auth` (base64 user:pass) or `username`/`password`.
 * Credential helpers (`credsStore`, `credHelpers`) are not run.
 */
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { DEFAULT_REGISTRY } from '../reference.js';

/** A user name and password (or token) for a registry. */
export interface Credentials {
  username: string;
  password: string;
}

/** Parses `user:pass` (the password may contain colons). */
export function parseCreds(text: string): Credentials {
  const i = text.indexOf(':');
  if (i <= 0) throw new UsageError('TSG_USAGE', '--creds must be USER:PASSWORD');
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

/** `https://index.docker.io/v1/` → `docker.io`; `https://host:5000/v2` → `host:5000`. */
export function normalizeAuthKey(key: string): string {
  let host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') host = DEFAULT_REGISTRY;
  return host;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
}

/** Registry credentials: the ones given (`--creds`), else the `auths` of docker's config.json (credential helpers are not run). */
export class CredentialStore {
  #explicit: Credentials | undefined;
  #fromFile: Map<string, Credentials> | undefined;

  constructor(
    private readonly options: { creds?: Credentials | undefined; dockerConfig?: string | undefined } = {},
  ) {
    this.#explicit = options.creds;
  }

  /** Credentials for a registry as named in references (`docker.io`, `host:port`). */
  get(registry: string): Credentials | undefined {
    if (this.#explicit) return this.#explicit;
    return this.#file().get(normalizeAuthKey(registry));
  }

  #file(): Map<string, Credentials> {
    if (this.#fromFile) return this.#fromFile;
    const map = new Map<string, Credentials>();
    const path = this.options.dockerConfig ?? dockerConfigPath();
    let parsed: { auths?: Record<string, DockerAuthEntry> } = {};
    try {
      parsed = JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new UsageError('TSG_USAGE', `cannot read docker config ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    for (const [key, entry] of Object.entries(parsed.auths ?? {})) {
      let creds: Credentials | undefined;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i > 0) creds = { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
      } else if (entry.username && entry.password) {
        creds = { username: entry.username, password: entry.password };
      }
      if (creds) map.set(normalizeAuthKey(key), creds);
    }
    this.#fromFile = map;
    return map;
  }
}

export function basicAuthHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
