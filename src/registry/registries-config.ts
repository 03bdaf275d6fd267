/**
 * Registry configuration in one file: `registries.json` in tsgraph's config
 * dir (`$TSGRAPH_CONFIG_DIR`, else ~/.config/tsgraph, else /etc/tsgraph;
 * the first that exists wins, whole — files are not merged). See
 * docs/registries.md.
 *
 *   {
 *     "unqualifiedSearchRegistries": ["registry.example", "docker.io"],
 *     "registries": {
 *       "docker.io": { "mirrors": ["127.0.0.1:5001", "mirror.example"] },
 *       "mirror.example": { "ca": "mirror-ca.crt", "clientCert": "me.cert", "clientKey": "me.key" },
 *       "build.local:5000": { "insecure": true }
 *     }
 *   }
 *
 * A mirror is a host like any other: its TLS settings and its credentials
 * (docker's config.json) are looked up under its own name, never the
 * upstream's. Validated with zod (loaded only when a file exists), unknown
 * keys refused so that a typo is an error, not a silently ignored setting.
 */
import * as fs from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { normalizeAuthKey } from './credentials.js';

/** What one registry host may be configured with. */
export interface HostConfig {
  /** Pull-through mirrors (`host[:port]`), tried in order before this registry; pulls only. */
  mirrors?: string[] | undefined;
  /** Plain http and unverified TLS allowed (like --insecure-registry). */
  insecure?: boolean | undefined;
  /** Extra CA certificate file(s) (PEM) trusted for this host, besides the system's. */
  ca?: string | string[] | undefined;
  /** Client certificate (PEM) for mutual TLS; needs clientKey. */
  clientCert?: string | undefined;
  /** Client key (PEM) for mutual TLS; needs clientCert. */
  clientKey?: string | undefined;
}

/** The content of registries.json. */
export interface RegistriesConfig {
  /** Registries a short name (`busybox`, `me/app`) is looked up in, in order; default docker.io only. */
  unqualifiedSearchRegistries?: string[] | undefined;
  /** Settings per registry host (`host[:port]`). */
  registries?: Record<string, HostConfig> | undefined;
}

/** TLS material of one host, read from the files the config names. */
export interface HostTls {
  ca: string[];
  cert: Buffer | undefined;
  key: Buffer | undefined;
}

const MAX_CONFIG_BYTES = 1 << 20;
/** Cap of one TLS file (CA bundle, client certificate or key), also for certs.d. */
export const MAX_PEM_BYTES = 1 << 20;
const HOST_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/;
export const CONFIG_FILE = 'registries.json';

function bad(source: string, why: string): UsageError {
  return new UsageError('TSG_USAGE', `registry config ${source}: ${why}`, { data: { config: source } });
}

async function validate(raw: unknown, source: string): Promise<RegistriesConfig> {
  const { z } = await import('zod');
  const host = z.string().regex(HOST_RE, 'not a host[:port]');
  const hostConfig = z
    .object({
      mirrors: z.array(host).max(16).optional(),
      insecure: z.boolean().optional(),
      ca: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).optional(),
      clientCert: z.string().min(1).optional(),
      clientKey: z.string().min(1).optional(),
    })
    .strict()
    .refine((h) => (h.clientCert === undefined) === (h.clientKey === undefined), 'clientCert and clientKey go together');
  const schema = z
    .object({
      unqualifiedSearchRegistries: z.array(host).max(16).optional(),
      registries: z.record(host, hostConfig).optional(),
    })
    .strict();
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw bad(source, `${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return r.data as RegistriesConfig;
}

/**
 * Reads a TLS file (CA, client certificate or key; registries.json and
 * certs.d) without trusting what the path is: opened O_NONBLOCK so a FIFO
 * cannot hang the open, fstat must say regular file (a FIFO, /dev/zero, a
 * directory or a socket is refused instead of read), and at most `cap` bytes
 * are read whatever the file claims. Symlinks are followed on purpose:
 * /etc/ssl/certs/*.pem and certs.d entries are commonly links, and the check
 * applies to the final target. Returns the content, or throws the one-line
 * reason from `refuse`.
 */
export function readTlsFile(path: string, cap: number, refuse: (why: string) => Error): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw refuse(`cannot open: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw refuse('not a regular file');
    if (st.size > cap) throw refuse(`larger than ${cap} bytes`);
    const buf = Buffer.alloc(cap + 1);
    let n = 0;
    for (;;) {
      let got: number;
      try {
        got = fs.readSync(fd, buf, n, buf.length - n, null);
      } catch (err) {
        throw refuse(`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (got === 0) break;
      n += got;
      // The file grew past the cap while we read it.
      if (n > cap) throw refuse(`larger than ${cap} bytes`);
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function readCapped(path: string, cap: number, what: string, source: string): Buffer {
  return readTlsFile(path, cap, (why) => bad(source, `${what} ${path}: ${why}`));
}

/** The registry settings in force, with their TLS files read; empty when there is no config file. */
export class HostsConfig {
  readonly searchRegistries: string[];
  #hosts = new Map<string, HostConfig>();
  #tls = new Map<string, HostTls>();

  constructor(
    config: RegistriesConfig = {},
    /** Where the config came from (a path, or "StoreOptions.registries"), for messages. */
    readonly source: string | undefined = undefined,
    baseDir = process.cwd(),
  ) {
    this.searchRegistries = (config.unqualifiedSearchRegistries ?? []).map(normalizeAuthKey);
    for (const [name, host] of Object.entries(config.registries ?? {})) {
      const key = normalizeAuthKey(name);
      if (this.#hosts.has(key)) throw bad(source ?? 'options', `${name} is configured twice`);
      this.#hosts.set(key, host);
      const file = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
      const cas = host.ca === undefined ? [] : Array.isArray(host.ca) ? host.ca : [host.ca];
      if (cas.length || host.clientCert) {
        this.#tls.set(key, {
          ca: cas.map((p) => readCapped(file(p), MAX_PEM_BYTES, 'CA file', source ?? 'options').toString('utf8')),
          cert: host.clientCert ? readCapped(file(host.clientCert), MAX_PEM_BYTES, 'client certificate', source ?? 'options') : undefined,
          key: host.clientKey ? readCapped(file(host.clientKey), MAX_PEM_BYTES, 'client key', source ?? 'options') : undefined,
        });
      }
    }
  }

  /** Mirrors of `registry` (host[:port] as in references), in the order to try them. */
  mirrors(registry: string): string[] {
    return (this.#hosts.get(normalizeAuthKey(registry))?.mirrors ?? []).map(normalizeAuthKey);
  }

  /** True when the config allows plain http / unverified TLS for `host`. */
  insecure(host: string): boolean {
    return this.#hosts.get(normalizeAuthKey(host))?.insecure === true;
  }

  /** Extra CAs and client certificate for `host`, if configured. */
  tls(host: string): HostTls | undefined {
    return this.#tls.get(normalizeAuthKey(host));
  }

  /** True when nothing is configured (no mirrors, no host settings, no search list). */
  get empty(): boolean {
    return this.#hosts.size === 0 && this.searchRegistries.length === 0;
  }
}

/** The registries.json that applies: the first one found in `configDirs`. */
export function findRegistriesConfig(configDirs: string[]): string | undefined {
  for (const dir of configDirs) {
    const path = join(dir, CONFIG_FILE);
    if (fs.existsSync(path)) return path;
  }
  return undefined;
}

/**
 * Loads the registry configuration: `given` as an object (validated too), a
 * path to a registries.json, or — when undefined — the first registries.json
 * in `configDirs` (none: an empty configuration, without loading zod).
 */
export async function loadRegistriesConfig(given: RegistriesConfig | string | undefined, configDirs: string[]): Promise<HostsConfig> {
  if (given !== undefined && typeof given !== 'string') {
    return new HostsConfig(await validate(given, 'StoreOptions.registries'), 'StoreOptions.registries');
  }
  const path = given ?? findRegistriesConfig(configDirs);
  if (path === undefined) return new HostsConfig();
  const text = readCapped(path, MAX_CONFIG_BYTES, 'file', path).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad(path, `not valid JSON (${(err as Error).message.slice(0, 120)})`);
  }
  return new HostsConfig(await validate(raw, path), path, dirname(path));
}

/**
 * True when `input` names no registry (`busybox`, `me/app:1`), so that the
 * unqualified-search registries apply; docker's rule for the first path
 * component (a dot, a colon, `localhost` or an upper-case letter make it a host).
 */
export function isShortName(input: string): boolean {
  const name = input.replace(/^docker:\/\//, '').replace(/@.*$/, '');
  const slash = name.indexOf('/');
  if (slash < 0) return true;
  const first = name.slice(0, slash);
  return !(first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
}

/** The references a short name stands for, one per search registry in order (docker.io adds `library/`). */
export function shortNameCandidates(input: string, searchRegistries: string[]): string[] {
  const name = input.replace(/^docker:\/\//, '');
  return searchRegistries.map((r) => `${r}/${r === 'docker.io' && !name.replace(/[:@].*$/, '').includes('/') ? 'library/' : ''}${name}`);
}
