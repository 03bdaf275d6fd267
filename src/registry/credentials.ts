/**
 * Registry credentials: `--creds user:pass` first, then docker's
 * `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`)
 * as docker reads it: a `credHelpers` entry for the host, else `credsStore`,
 * runs that credential helper (cred-helper.ts); without one, the `auths`
 * entry (`auth`, base64 user:pass, or `username`/`password`).
 */
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { DEFAULT_REGISTRY } from '../reference.js';
import { CredentialHelper } from './cred-helper.js';

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

/** The key docker uses for a registry in `auths` and with credential helpers (docker.io's is its v1 URL). */
export function serverKey(registry: string): string {
  return normalizeAuthKey(registry) === DEFAULT_REGISTRY ? 'https://index.docker.io/v1/' : normalizeAuthKey(registry);
}

/** The parts of docker's config.json tsgraph reads. */
export interface DockerConfigFile {
  auths?: Record<string, DockerAuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** Reads docker's config.json ({} when missing); a malformed one is one TSG_USAGE line. */
export function readDockerConfig(path: string): DockerConfigFile & Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError('TSG_USAGE', `cannot read docker config ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message quotes the text, which may hold passwords.
    throw new UsageError('TSG_USAGE', `docker config ${path} is not valid JSON`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError('TSG_USAGE', `docker config ${path} is not a JSON object`);
  return parsed as DockerConfigFile & Record<string, unknown>;
}

/** The credential helper docker would use for `registry`: its credHelpers entry, else credsStore; undefined for none. */
export function helperNameFor(config: DockerConfigFile, registry: string): string | undefined {
  const host = normalizeAuthKey(registry);
  for (const [key, name] of Object.entries(config.credHelpers ?? {})) {
    if (typeof name === 'string' && name && normalizeAuthKey(key) === host) return name;
  }
  return typeof config.credsStore === 'string' && config.credsStore ? config.credsStore : undefined;
}

interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
}

/** Registry credentials: the ones given (`--creds`), else docker's config.json (its credential helper for the host, else `auths`). */
export class CredentialStore {
  #explicit: Credentials | undefined;
  #config: DockerConfigFile | undefined;
  #fromFile: Map<string, Credentials> | undefined;
  #fromHelpers = new Map<string, Promise<Credentials | undefined>>();

  constructor(
    private readonly options: { creds?: Credentials | undefined; dockerConfig?: string | undefined; env?: NodeJS.ProcessEnv | undefined } = {},
  ) {
    this.#explicit = options.creds;
  }

  /** True when credentials were given explicitly (`--creds`): they are sent to whatever registry is asked. */
  get explicit(): boolean {
    return this.#explicit !== undefined;
  }

  /** The config.json this store reads. */
  get configPath(): string {
    return this.options.dockerConfig ?? dockerConfigPath(this.options.env);
  }

  /**
   * Credentials for a registry as named in references (`docker.io`,
   * `host:port`) without running helpers: `--creds`, else `auths`. Prefer
   * {@link lookup}, which runs the configured credential helper.
   */
  get(registry: string): Credentials | undefined {
    if (this.#explicit) return this.#explicit;
    return this.#file().get(normalizeAuthKey(registry));
  }

  /** Credentials for a registry: `--creds`, else the host's credential helper (run once per store), else `auths`. */
  async lookup(registry: string): Promise<Credentials | undefined> {
    if (this.#explicit) return this.#explicit;
    return this.lookupConfigured(registry);
  }

  /**
   * Only what docker's config.json holds for this very host, never `--creds`:
   * what a mirror may receive (explicit credentials belong to the registry
   * named in the reference, not to a mirror standing in for it).
   */
  async lookupConfigured(registry: string): Promise<Credentials | undefined> {
    const helper = this.helperFor(registry);
    if (!helper) return this.#file().get(normalizeAuthKey(registry));
    const host = normalizeAuthKey(registry);
    let p = this.#fromHelpers.get(host);
    if (!p) {
      p = helper.get(serverKey(registry));
      this.#fromHelpers.set(host, p);
      p.catch(() => this.#fromHelpers.delete(host));
    }
    return p;
  }

  /** The credential helper configured for `registry` (credHelpers, else credsStore), if any. */
  helperFor(registry: string): CredentialHelper | undefined {
    const name = helperNameFor(this.#dockerConfig(), registry);
    return name ? new CredentialHelper(name, this.options.env) : undefined;
  }

  #dockerConfig(): DockerConfigFile {
    this.#config ??= readDockerConfig(this.configPath);
    return this.#config;
  }

  #file(): Map<string, Credentials> {
    if (this.#fromFile) return this.#fromFile;
    const map = new Map<string, Credentials>();
    for (const [key, entry] of Object.entries(this.#dockerConfig().auths ?? {})) {
      let creds: Credentials | undefined;
      if (entry && entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i > 0) creds = { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
      } else if (entry && entry.username && entry.password) {
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
