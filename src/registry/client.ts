/**
 * RegistryClient: the distribution API (v2) as tsgraph uses it.
 *
 * Each host is pinged once (`GET /v2/`) to learn its scheme (https, or http
 * for loopback / --insecure-registry hosts that do not speak TLS) and its
 * auth challenge. Requests then carry the right Authorization for their
 * repository scope; a 401 is answered once with a fresh token or Basic
 * credentials, and a second 401 is reported as wrong credentials / denied.
 */
import { Readable } from 'node:stream';
import type { Response } from 'node-fetch';
import { type Digest, sha256 } from '../digest.js';
import { AuthError, IntegrityError, RegistryError, type TsgraphError } from '../errors.js';
import { apiHost } from '../reference.js';
import { type AuthAnswer, type Challenge, Authenticator, parseChallenges } from './auth.js';
import { type CredentialScope, mayReceiveCredentials, scopeOf } from './credential-scope.js';
import { CredentialStore } from './credentials.js';
import { type HostsConfig, type RegistriesConfig, loadRegistriesConfig } from './registries-config.js';
import { registryHttpError } from './http-errors.js';
import { type SendOptions, Transport, type TransportOptions, networkError } from './transport.js';
import { retryBodyRead } from './retry.js';
import { MANIFEST_ACCEPT } from '../oci/media-types.js';

export const MAX_MANIFEST_BYTES = 4 << 20;

/** Options of a RegistryClient: transport settings (TLS, insecure registries, timeouts, retries) and credentials. */
export interface RegistryClientOptions extends TransportOptions {
  credentials?: CredentialStore;
  /**
   * Mirrors, per-host TLS/insecure settings and short-name search registries
   * (registries-config.ts): the parsed content of a registries.json, or a
   * path to one; default the first `registries.json` in `configDirs`.
   */
  registries?: RegistriesConfig | string | undefined;
}

/** A manifest or index as fetched: its exact bytes, media type and digest. */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

export interface BlobResponse {
  /** Offset of the first byte of `body` (0 when the server ignored Range). */
  start: number;
  body: NodeJS.ReadableStream;
}

interface HostState {
  base: string;
  challenge: Challenge | undefined;
  /** Who may receive this registry's credentials (credential-scope.ts). */
  scope: CredentialScope;
}

type Action = 'pull' | 'push';

/** An OCI distribution client: ping and auth challenges, manifests, blobs (with Range resume), pushes; one token cache and connection pool. */
export class RegistryClient {
  readonly transport: Transport;
  readonly credentials: CredentialStore;
  #auth: Authenticator;
  #hosts = new Map<string, Promise<HostState>>();
  #options: RegistryClientOptions;
  #config: Promise<HostsConfig> | undefined;
  /** Mirrors that could not be reached: not tried again by this client. */
  #downMirrors = new Set<string>();
  /** Which endpoint served each registry's last pull request (a mirror's host, or the registry itself). */
  readonly servedBy = new Map<string, string>();

  constructor(options: RegistryClientOptions = {}) {
    this.transport = new Transport(options);
    this.credentials = options.credentials ?? new CredentialStore();
    this.#auth = new Authenticator(this.transport);
    this.#options = options;
  }

  /** The registry configuration (registries.json), loaded on first use and handed to the transport. */
  hostsConfig(): Promise<HostsConfig> {
    if (!this.#config) {
      this.#config = loadRegistriesConfig(this.#options.registries, this.#options.configDirs ?? []).then((c) => {
        this.transport.useHostsConfig(c);
        return c;
      });
      this.#config.catch(() => (this.#config = undefined));
    }
    return this.#config;
  }

  /**
   * Runs a pull-side request against the mirrors of `registry` in order,
   * then the registry itself. A mirror's failure of any kind (unreachable,
   * missing, refused, bad bytes) moves on to the next; an abort stops. A
   * mirror is asked without retries and with only its own credentials.
   */
  async #pullFrom<T>(registry: string, signal: AbortSignal | undefined, fn: (host: string, mirror: boolean) => Promise<T>): Promise<T> {
    const mirrors = (await this.hostsConfig()).mirrors(registry).filter((m) => !this.#downMirrors.has(m));
    for (const mirror of mirrors) {
      try {
        const out = await fn(mirror, true);
        this.servedBy.set(registry, mirror);
        return out;
      } catch (err) {
        if (signal?.aborted || (err as TsgraphError).code === 'TSG_ABORTED') throw err;
        const code = (err as TsgraphError).code;
        if (code === 'TSG_UNREACHABLE' || code === 'TSG_TIMEOUT' || code === 'TSG_TLS') this.#downMirrors.add(mirror);
      }
    }
    const out = await fn(registry, false);
    this.servedBy.set(registry, registry);
    return out;
  }

  /** Learns scheme and auth challenge of a registry (cached per client). */
  ping(registry: string, signal?: AbortSignal, options: { retry?: boolean } = {}): Promise<HostState> {
    const host = apiHost(registry);
    let p = this.#hosts.get(host);
    if (!p) {
      p = this.#ping(host, signal, options.retry);
      this.#hosts.set(host, p);
      p.catch(() => this.#hosts.delete(host));
    }
    return p;
  }

  async #ping(host: string, signal: AbortSignal | undefined, retry: boolean | undefined): Promise<HostState> {
    await this.hostsConfig(); // insecure and TLS settings of the host
    const schemes = this.transport.allowsHttp(host) ? ['https', 'http'] : ['https'];
    let lastError: unknown;
    for (const scheme of schemes) {
      const base = `${scheme}://${host}`;
      let res: Response;
      try {
        res = await this.transport.send(`${base}/v2/`, { signal, ...(retry === false ? { retry: false } : {}) });
      } catch (err) {
        lastError = err;
        // Fall back to http only when the server plainly does not speak TLS;
        // a certificate problem is reported, never silently downgraded.
        if (scheme === 'https' && schemes.length > 1 && speaksNoTls(err)) continue;
        throw err;
      }
      res.body?.resume();
      if (res.status === 401) {
        const challenges = parseChallenges(res.headers.get('www-authenticate'));
        const challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
        return { base, challenge, scope: scopeOf(base, this.transport.allowsHttp(host)) };
      }
      if (res.ok) return { base, challenge: undefined, scope: scopeOf(base, this.transport.allowsHttp(host)) };
      throw new RegistryError('TSG_REGISTRY', `${host} does not look like a registry: GET /v2/ answered HTTP ${res.status}`, {
        status: res.status,
        temporary: res.status >= 500,
      });
    }
    throw lastError;
  }

  /**
   * An authenticated request to `/v2/<repository>/<path>`. Returns the
   * response whatever its status (after auth); callers map errors.
   */
  async request(
    registry: string,
    repository: string,
    path: string,
    actions: Action[],
    options: SendOptions & { extraScopes?: string[]; mirror?: boolean } = {},
  ): Promise<Response> {
    const { extraScopes, mirror, ...sendOptions } = options;
    // A mirror is tried once; the next mirror or the registry is the retry.
    if (mirror) sendOptions.retry = false;
    const state = await this.ping(registry, options.signal, mirror ? { retry: false } : {});
    const url = path.startsWith('http') ? path : `${state.base}/v2/${repository}/${path}`;
    // An absolute URL (an upload Location) on another origin gets no
    // credentials at all, so there is no challenge to answer either.
    if (!mayReceiveCredentials(state.scope, 'registry', new URL(url))) return this.transport.send(url, sendOptions);
    const scopes = [`repository:${repository}:${actions.join(',')}`, ...(extraScopes ?? [])];
    // A mirror gets the credentials stored for the mirror itself, never the
    // upstream's nor --creds (which name the registry of the reference).
    const creds = mirror ? await this.credentials.lookupConfigured(registry) : await this.credentials.lookup(registry);
    let challenge = state.challenge;
    let answer: AuthAnswer = challenge
      ? await this.#auth.header(challenge, scopes, creds, state.scope, options.signal)
      : { authorization: undefined };
    const send = (auth: string | undefined) =>
      this.transport.send(url, { ...sendOptions, grant: auth ? { authorization: auth, scope: state.scope, use: 'registry' } : undefined });
    let res = await send(answer.authorization);
    if (res.status !== 401) return res;

    res.body?.resume();
    const challenges = parseChallenges(res.headers.get('www-authenticate'));
    challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    const host = apiHost(registry);
    if (!challenge) throw new AuthError('TSG_AUTH_REQUIRED', `${host} refused the request (401) without saying how to authenticate`);
    if (challenge.scheme === 'basic' && answer.authorization?.startsWith('Basic ')) throw wrongCredentials(host, creds?.username);
    this.#auth.forget();
    answer = await this.#auth.header(challenge, scopes, creds, state.scope, options.signal);
    if (!answer.authorization) throw authRequired(host, repository);
    res = await send(answer.authorization);
    if (res.status !== 401) return res;
    res.body?.resume();
    if (challenge.scheme === 'basic') throw wrongCredentials(host, creds?.username);
    if (answer.withheld) throw withheldError(host, repository, answer.withheld);
    if (!creds) throw authRequired(host, repository);
    throw new AuthError('TSG_DENIED', `user ${creds.username} may not ${actions.join('/')} ${host}/${repository}`, {
      data: { host, repository, status: 401 },
    });
  }

  /**
   * Proves the credentials work: answers the registry's challenge for
   * `GET /v2/` (Basic directly, Bearer through the token service).
   * Throws TSG_AUTH_FAILED on wrong credentials.
   */
  async verifyCredentials(registry: string, signal?: AbortSignal): Promise<void> {
    const state = await this.ping(registry, signal);
    if (!state.challenge) return; // an open registry takes anyone
    const creds = await this.credentials.lookup(registry);
    const host = apiHost(registry);
    if (!creds) throw new AuthError('TSG_AUTH_REQUIRED', `no credentials given for ${host}`);
    const answer = await this.#auth.header(state.challenge, [], creds, state.scope, signal);
    // An anonymous token proves nothing about the password: refuse to "log in" with it.
    if (answer.withheld) throw withheldError(host, '', answer.withheld);
    const grant = answer.authorization ? { authorization: answer.authorization, scope: state.scope, use: 'registry' as const } : undefined;
    const res = await this.transport.send(`${state.base}/v2/`, { grant, signal });
    res.body?.resume();
    if (res.status === 401 || res.status === 403) throw wrongCredentials(host, creds.username);
    if (!res.ok) throw await registryHttpError(res, { host, repository: '', kind: 'login', target: undefined });
  }

  /**
   * GET a manifest or index by tag or digest; verifies the digest when
   * pinned. Tries the registry's mirrors first (registries.json).
   */
  getManifest(registry: string, repository: string, selector: string, signal?: AbortSignal): Promise<FetchedManifest> {
    return this.#pullFrom(registry, signal, (host, mirror) => this.#getManifest(host, mirror, repository, selector, signal));
  }

  async #getManifest(registry: string, mirror: boolean, repository: string, selector: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const ctx = { host: apiHost(registry), repository, kind: 'manifest', target: selector };
    const request = () => this.request(registry, repository, `manifests/${selector}`, ['pull'], { headers: { accept: MANIFEST_ACCEPT }, signal, mirror });
    const { res, bytes } = await retryBodyRead(this.transport.retry, signal, request, async (res) => {
      if (!res.ok) throw await registryHttpError(res, ctx);
      return { res, bytes: await readLimited(res, MAX_MANIFEST_BYTES, `manifest ${selector}`) };
    });
    const digest = sha256(bytes);
    if (selector.startsWith('sha256:') && digest !== selector) {
      throw new IntegrityError('TSG_DIGEST_MISMATCH', `manifest content does not match its digest: expected ${selector}, got ${digest}`, {
        data: { expected: selector, actual: digest },
      });
    }
    const header = res.headers.get('docker-content-digest');
    if (header && header.startsWith('sha256:') && header !== digest) {
      throw new IntegrityError('TSG_DIGEST_MISMATCH', `registry says manifest ${selector} is ${header}, its bytes hash to ${digest}`, {
        data: { expected: header, actual: digest },
      });
    }
    const mediaType = mediaTypeOf(res, bytes);
    return { bytes, mediaType, digest };
  }

  /**
   * Lists tags (`/tags/list`, first page only, up to `limit`). Throws
   * TSG_REPO_NOT_FOUND when the repository does not exist.
   */
  listTags(registry: string, repository: string, limit = 100, signal?: AbortSignal): Promise<string[]> {
    return this.#pullFrom(registry, signal, (host, mirror) => this.#listTags(host, mirror, repository, limit, signal));
  }

  async #listTags(registry: string, mirror: boolean, repository: string, limit: number, signal?: AbortSignal): Promise<string[]> {
    const request = () => this.request(registry, repository, `tags/list?n=${limit}`, ['pull'], { signal, mirror, headers: { accept: 'application/json' } });
    const raw = await retryBodyRead(this.transport.retry, signal, request, async (res) => {
      if (!res.ok) throw await registryHttpError(res, { host: apiHost(registry), repository, kind: 'tags', target: undefined });
      return readLimited(res, 4 << 20, 'tag list');
    });
    const body = JSON.parse(raw.toString('utf8')) as { tags?: string[] | null };
    return body.tags ?? [];
  }

  /** GET a blob from `offset` (Range), from a mirror first if any. The caller verifies what it reads. */
  getBlob(registry: string, repository: string, digest: Digest, offset: number, signal?: AbortSignal): Promise<BlobResponse> {
    return this.#pullFrom(registry, signal, (host, mirror) => this.#getBlob(host, mirror, repository, digest, offset, signal));
  }

  async #getBlob(registry: string, mirror: boolean, repository: string, digest: Digest, offset: number, signal?: AbortSignal): Promise<BlobResponse> {
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await this.request(registry, repository, `blobs/${digest}`, ['pull'], { headers, signal, mirror });
    if (res.status === 206) {
      const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset) {
        res.body?.resume();
        throw new RegistryError('TSG_REGISTRY', `registry answered Range ${offset}- with Content-Range ${res.headers.get('content-range')}`);
      }
      return { start: offset, body: res.body! };
    }
    if (res.ok) return { start: 0, body: res.body! };
    if (res.status === 416 && offset > 0) {
      // Nothing left after offset: we already have every byte.
      res.body?.resume();
      return { start: offset, body: emptyStream() };
    }
    throw await registryHttpError(res, { host: apiHost(registry), repository, kind: 'blob', target: digest });
  }

  /** HEAD a blob: true when the registry has it in that repository. */
  async hasBlob(registry: string, repository: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    const res = await this.request(registry, repository, `blobs/${digest}`, ['pull', 'push'], { method: 'HEAD', signal });
    res.body?.resume();
    if (res.status === 404) return false;
    if (res.ok) return true;
    throw await registryHttpError(res, { host: apiHost(registry), repository, kind: 'blob', target: digest });
  }

  /** Uploads a blob held in memory unless the registry has it (monolithic POST + PUT). */
  async pushBlob(registry: string, repository: string, digest: Digest, data: Buffer, signal?: AbortSignal): Promise<void> {
    if (await this.hasBlob(registry, repository, digest, signal)) return;
    const started = await this.startUpload(registry, repository, digest, undefined, signal);
    if (!started.mounted) await this.finishUpload(registry, repository, started.location, digest, data, signal);
  }

  /** An upload Location header as an absolute URL (registries may send it relative). */
  async #absolute(registry: string, location: string, signal?: AbortSignal): Promise<string> {
    return new URL(location, (await this.ping(registry, signal)).base).href;
  }

  /**
   * Starts an upload, trying a cross-repository mount from `from` first.
   * Returns `mounted` (the registry linked the blob, nothing to send) or the upload URL.
   */
  async startUpload(
    registry: string,
    repository: string,
    digest: Digest,
    from?: string,
    signal?: AbortSignal,
  ): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const ctx = { host: apiHost(registry), repository, kind: 'upload', target: digest };
    const query = from ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}` : '';
    const res = await this.request(registry, repository, `blobs/uploads/${query}`, ['pull', 'push'], {
      method: 'POST',
      signal,
      extraScopes: from ? [`repository:${from}:pull`] : [],
    });
    res.body?.resume();
    if (res.status === 201 && from) return { mounted: true };
    if (res.status !== 202) throw await registryHttpError(res, ctx);
    const location = res.headers.get('location');
    if (!location) throw new RegistryError('TSG_REGISTRY', `${ctx.host} started an upload without a Location`);
    return { mounted: false, location: await this.#absolute(registry, location, signal) };
  }

  /** PATCHes one chunk; returns the next upload URL. */
  async uploadChunk(registry: string, repository: string, location: string, chunk: Buffer, start: number, signal?: AbortSignal): Promise<string> {
    const res = await this.request(registry, repository, location, ['pull', 'push'], {
      method: 'PATCH',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(chunk.length),
        'content-range': `${start}-${start + chunk.length - 1}`,
      },
      body: chunk,
      signal,
    });
    res.body?.resume();
    if (res.status !== 202) throw await registryHttpError(res, { host: apiHost(registry), repository, kind: 'upload chunk', target: undefined });
    const next = res.headers.get('location');
    return next ? this.#absolute(registry, next, signal) : location;
  }

  /** Closes an upload with PUT ?digest= (and the last bytes, if any). */
  async finishUpload(registry: string, repository: string, location: string, digest: Digest, last: Buffer, signal?: AbortSignal): Promise<void> {
    const url = new URL(location);
    url.searchParams.set('digest', digest);
    const res = await this.request(registry, repository, url.href, ['pull', 'push'], {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(last.length) },
      body: last,
      signal,
    });
    res.body?.resume();
    if (res.status !== 201) throw await registryHttpError(res, { host: apiHost(registry), repository, kind: 'upload', target: digest });
  }

  /** PUTs a manifest under a tag or digest. Returns the digest of the bytes. */
  async pushManifest(
    registry: string,
    repository: string,
    reference: string,
    bytes: Buffer,
    mediaType: string,
    signal?: AbortSignal,
  ): Promise<Digest> {
    const res = await this.request(registry, repository, `manifests/${reference}`, ['pull', 'push'], {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: bytes,
      signal,
    });
    if (res.status !== 201 && res.status !== 200) {
      throw await registryHttpError(res, { host: apiHost(registry), repository, kind: 'manifest', target: reference });
    }
    res.body?.resume();
    return sha256(bytes);
  }

  close(): void {
    this.transport.close();
  }
}

function wrongCredentials(host: string, user: string | undefined): TsgraphError {
  return new AuthError('TSG_AUTH_FAILED', `authentication failed at ${host}${user ? ` for user ${user}` : ''}: wrong username or password`, {
    data: { host },
  });
}

/** The registry wanted a token the user's credentials could have bought, but its token service may not receive them. */
function withheldError(host: string, repository: string, why: string): TsgraphError {
  return new AuthError('TSG_AUTH_REQUIRED', `${host}${repository ? `/${repository}` : ''} requires authentication, but ${why}`, {
    data: { host, repository, credentialsWithheld: true },
  });
}

function authRequired(host: string, repository: string): TsgraphError {
  return new AuthError(
    'TSG_AUTH_REQUIRED',
    `${host}/${repository} requires authentication (or does not exist); pass --creds USER:PASSWORD or add it to docker's config.json`,
    { data: { host, repository } },
  );
}

function speaksNoTls(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? '';
  return code === 'EPROTO' || code === 'ECONNRESET' || /wrong version number|packet length too long|http request/i.test(cause?.message ?? '');
}

function mediaTypeOf(res: Response, bytes: Buffer): string {
  const header = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  if (header && header !== 'application/json' && header !== 'application/octet-stream' && header !== 'text/plain') return header;
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: string };
    if (typeof parsed.mediaType === 'string') return parsed.mediaType;
  } catch {
    /* the caller reports unparsable manifests */
  }
  return header || 'application/octet-stream';
}

/** Reads a whole body, refusing more than `limit` bytes. */
export async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    res.body?.resume();
    throw new IntegrityError('TSG_SIZE_MISMATCH', `${what} is ${declared} bytes, more than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw new IntegrityError('TSG_SIZE_MISMATCH', `${what} is larger than the ${limit} bytes allowed`);
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    throw networkError(res.url, err);
  }
  return Buffer.concat(chunks);
}

function emptyStream(): NodeJS.ReadableStream {
  return Readable.from([]);
}
