/**
 * HTTP transport to registries: picks https or http per host, trusts the
 * system CAs plus `certs.d/<host[:port]>/*.crt` from tsgraph's config dirs,
 * follows redirects by hand, bounds every wait, and retries what is worth
 * retrying.
 *
 * Authorization is attached here and only here, from a `Grant`, after
 * asking credential-scope.ts whether this URL may receive it — at every
 * redirect hop. Blob GETs are routinely redirected to CDNs or object stores,
 * and upload Locations may name other hosts: those never see registry
 * credentials.
 */
import * as fs from 'node:fs';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import fetch, { type RequestInit, Response } from 'node-fetch';
import { RegistryError, isAbortError, InterruptedError, TsgraphError } from '../errors.js';
import { type Grant, mayReceiveCredentials } from './credential-scope.js';
import { type HostsConfig, MAX_PEM_BYTES, readTlsFile } from './registries-config.js';
import {
  DEFAULT_RETRY,
  type RetryPolicy,
  backoffDelay,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  waitBeforeRetry,
} from './retry.js';
import {
  CONNECT_TIMEOUT_CODE,
  DEFAULT_TIMEOUTS,
  IdleGuard,
  TimedHttpAgent,
  TimedHttpsAgent,
  type TimeoutPhase,
  type Timeouts,
  timeoutError,
  timeoutsFromEnv,
  uploadStream,
} from './timeouts.js';

export interface TransportOptions {
  /** Hosts (host[:port]) where plain http and unverified TLS are allowed. */
  insecureRegistries?: string[];
  /** Directories searched for `certs.d/<host>/` (first wins per file name). */
  configDirs?: string[];
  userAgent?: string;
  retry?: Partial<RetryPolicy>;
  /** Connect / response / idle limits (default: `TSGRAPH_TIMEOUT` etc., else DEFAULT_TIMEOUTS). */
  timeouts?: Partial<Timeouts> | undefined;
  /** Called before each retry; used for progress output. */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
}

export interface SendOptions {
  method?: string;
  /** Never `authorization`: credentials go in `grant`, so that one rule decides where they may go. */
  headers?: Record<string, string>;
  /** A request body; a Buffer so that retries and redirects can replay it. */
  body?: Buffer | undefined;
  signal?: AbortSignal | undefined;
  /** Credentials for this request, sent only where credential-scope.ts allows. */
  grant?: Grant | undefined;
  /** Retry on network errors / 5xx / 429 (default true; false for non-replayable bodies). */
  retry?: boolean;
}

const MAX_REDIRECTS = 10;
const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

/** Loopback hosts get plain http when they do not speak TLS, like docker. */
export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export class Transport {
  readonly retry: RetryPolicy;
  readonly timeouts: Timeouts;
  #insecure: Set<string>;
  #configDirs: string[];
  #agents = new Map<string, TimedHttpsAgent>();
  #httpAgent: TimedHttpAgent;
  #userAgent: string;
  #onRetry: TransportOptions['onRetry'];
  #hostsConfig: HostsConfig | undefined;

  constructor(options: TransportOptions = {}) {
    this.#insecure = new Set(options.insecureRegistries ?? []);
    this.#configDirs = options.configDirs ?? [];
    this.#userAgent = options.userAgent ?? 'tsgraph/0.1';
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeoutsFromEnv(), ...definedOnly(options.timeouts ?? {}) };
    this.#httpAgent = new TimedHttpAgent({ keepAlive: true }, this.timeouts.connectMs);
    this.#onRetry = options.onRetry;
  }

  /**
   * Per-host settings from registries.json (insecure, CA, client cert);
   * set by the RegistryClient before its first request. Agents made before
   * are dropped so that none runs with the old TLS settings.
   */
  useHostsConfig(config: HostsConfig): void {
    this.#hostsConfig = config;
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }

  /** True when http:// may be used for `host`. */
  allowsHttp(host: string): boolean {
    return this.skipsVerify(host) || isLoopbackHost(host);
  }

  /** True when TLS certificates of `host` are not verified (--insecure-registry or `insecure` in registries.json only). */
  skipsVerify(host: string): boolean {
    return this.#insecure.has(host) || this.#hostsConfig?.insecure(host) === true;
  }

  #httpsAgent(host: string): TimedHttpsAgent {
    let agent = this.#agents.get(host);
    if (agent) return agent;
    const extraCa: Buffer[] = [];
    // registries.json first (its client cert wins), then certs.d.
    const configured = this.#hostsConfig?.tls(host);
    let cert: Buffer | undefined = configured?.cert;
    let key: Buffer | undefined = configured?.key;
    for (const ca of configured?.ca ?? []) extraCa.push(Buffer.from(ca));
    for (const dir of this.#configDirs) {
      const hostDir = join(dir, 'certs.d', host);
      let names: string[] = [];
      try {
        names = fs.readdirSync(hostDir).sort();
      } catch {
        continue;
      }
      for (const name of names) {
        const path = join(hostDir, name);
        // A FIFO or /dev/zero here must not hang or fill memory: regular files only, capped (readTlsFile).
        const read = () => readTlsFile(path, MAX_PEM_BYTES, (why) => new RegistryError('TSG_TLS', `TLS file ${path} (certs.d of ${host}): ${why}`));
        if (name.endsWith('.crt')) extraCa.push(read());
        else if (name.endsWith('.cert') && !cert) cert = read();
        else if (name.endsWith('.key') && !key) key = read();
      }
    }
    agent = new TimedHttpsAgent(
      {
        keepAlive: true,
        ca: extraCa.length ? [...rootCertificates, ...extraCa.map((b) => b.toString())] : undefined,
        cert,
        key,
        rejectUnauthorized: !this.skipsVerify(host),
      },
      this.timeouts.connectMs,
    );
    this.#agents.set(host, agent);
    return agent;
  }

  #agentFor(url: URL): TimedHttpAgent | TimedHttpsAgent {
    return url.protocol === 'https:' ? this.#httpsAgent(url.host) : this.#httpAgent;
  }

  /**
   * One request with redirects followed. Each hop carries the grant's
   * Authorization only when mayReceiveCredentials says so for that hop.
   */
  async fetchOnce(url: string, options: SendOptions = {}): Promise<Response> {
    const addressed = new URL(url);
    let current = addressed;
    let method = options.method ?? 'GET';
    let body = options.body;
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...options.headers };
    for (const h of Object.keys(headers)) {
      if (h.toLowerCase() === 'authorization') {
        throw new TsgraphError('TSG_INTERNAL', 'Authorization must be passed as a grant, not a header (see credential-scope.ts)');
      }
    }
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sendHeaders = { ...headers };
      const g = options.grant;
      if (g && mayReceiveCredentials(g.scope, g.use, current, addressed)) sendHeaders.authorization = g.authorization;
      const res = await this.#fetchHop(current, method, sendHeaders, body, options.signal);
      const location = res.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(res.status) || !location) return res;
      res.body?.resume();
      current = new URL(location, current);
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
    }
    throw new RegistryError('TSG_REGISTRY', `too many redirects fetching ${url}`);
  }

  /**
   * One HTTP exchange with its waits bounded: the agent bounds connect,
   * a timer bounds the wait for headers (and a stuck upload), and the body
   * comes back wrapped in an IdleGuard. Timeouts abort through a private
   * controller tied to the caller's signal, so the caller can still abort.
   */
  async #fetchHop(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, signal: AbortSignal | undefined): Promise<Response> {
    const { responseMs, idleMs, connectMs } = this.timeouts;
    const ctl = new AbortController();
    const linked = signal ? AbortSignal.any([signal, ctl.signal]) : ctl.signal;
    let expired: RegistryError | undefined;
    let timer: NodeJS.Timeout | undefined;
    // Once headers are in, the request clock is done: a server may answer
    // before it read the whole upload, and the rest of it must not re-arm it.
    let settled = false;
    // `limit` is the configured limit the message names; `ms` may be longer (see below).
    const arm = (phase: TimeoutPhase, limit: number, ms = limit) => {
      if (settled) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        expired = timeoutError(url.href, phase, limit);
        ctl.abort(expired);
      }, ms);
      timer.unref(); // the request's socket keeps the process alive while it matters
    };
    let requestBody: Readable | undefined;
    if (body) {
      // A stream (not the Buffer) so that a stuck upload is noticed; the
      // response clock starts once the last byte is handed to the socket.
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) headers['content-length'] = String(body.length);
      requestBody = uploadStream(body, () => arm('upload', idleMs), () => arm('response', responseMs));
    }
    // The response clock runs from the start, connect included, but never
    // ends before the connect limit (enforced on the socket by the agent),
    // so a slow connect is reported as one.
    arm('response', responseMs, Math.max(responseMs, connectMs + 100));
    let res: Response;
    try {
      res = await fetch(url.href, {
        method,
        headers,
        body: requestBody as RequestInit['body'],
        redirect: 'manual',
        agent: this.#agentFor(url),
        signal: linked as RequestInit['signal'],
        compress: false,
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      if (expired) throw expired;
      if ((err as { code?: string }).code === CONNECT_TIMEOUT_CODE) throw timeoutError(url.href, 'connect', connectMs);
      throw err;
    } finally {
      settled = true;
      clearTimeout(timer);
    }
    if (!res.body) return res;
    const guarded = new IdleGuard(res.body as unknown as Readable, idleMs, () => timeoutError(url.href, 'body', idleMs));
    return new Response(guarded as unknown as ConstructorParameters<typeof Response>[0], {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
      url: res.url,
    } as ConstructorParameters<typeof Response>[1]);
  }

  /** fetchOnce with the retry policy applied. Network failures become TsgraphErrors. */
  async send(url: string, options: SendOptions = {}): Promise<Response> {
    const attempts = options.retry === false ? 1 : this.retry.attempts;
    for (let attempt = 1; ; attempt++) {
      let res: Response | undefined;
      let failure: unknown;
      try {
        res = await this.fetchOnce(url, options);
      } catch (err) {
        if (isAbortError(err) || options.signal?.aborted) throw new InterruptedError('TSG_ABORTED', 'operation aborted', { cause: err });
        if (err instanceof TsgraphError && !(err instanceof RegistryError)) throw err;
        failure = err;
      }
      if (res && !isRetryableStatus(res.status)) return res;
      const retryable = res !== undefined || isRetryableNetworkError(failure);
      const retryAfter = res ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
      // A registry that asks for a longer pause than we are willing to wait
      // is answered now, with its own status, rather than retried too early.
      const tooLong = retryAfter !== undefined && retryAfter > this.retry.maxRetryAfterMs;
      if (!retryable || attempt >= attempts || tooLong) {
        if (res) return res;
        throw networkError(url, failure);
      }
      const delayMs = backoffDelay(this.retry, attempt, retryAfter);
      const reason = res ? `HTTP ${res.status}` : String((failure as Error)?.message ?? failure);
      res?.body?.resume();
      this.#onRetry?.({ url, attempt, delayMs, reason });
      await waitBeforeRetry(delayMs, options.signal);
    }
  }

  /** Closes idle keep-alive sockets so the process can exit promptly. */
  close(): void {
    this.#httpAgent.destroy();
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Maps a fetch failure to TSG_UNREACHABLE / TSG_TLS / TSG_REGISTRY with a readable line. */
export function networkError(url: string, err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const e = err as { code?: string; errno?: string; message?: string };
  const code = e?.code ?? e?.errno ?? '';
  const host = safeHost(url);
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EAI_AGAIN') {
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' ? 'host not found' : code.toLowerCase();
    return new RegistryError('TSG_UNREACHABLE', `cannot reach registry ${host}: ${why}`, {
      cause: err,
      temporary: true,
      data: { host, syscallCode: code },
    });
  }
  if (TLS_VERIFY_CODES.has(code)) {
    return new RegistryError(
      'TSG_TLS',
      `TLS certificate of ${host} is not trusted (${code}); put its CA in certs.d/${host}/ca.crt under tsgraph's config dir, or pass --insecure-registry ${host}`,
      { cause: err, data: { host, tlsCode: code } },
    );
  }
  // TLS alerts 42/116: the server wanted a client certificate (mTLS) and got none, or not one it trusts.
  if (/alert (bad certificate|certificate required)|SSL alert number (42|116)\b/i.test(e?.message ?? '')) {
    return new RegistryError(
      'TSG_TLS',
      `${host} refused the TLS handshake: it wants a client certificate it trusts; set clientCert/clientKey for ${host} in registries.json (or certs.d/${host}/client.cert and .key under tsgraph's config dir)`,
      { cause: err, data: { host, tlsCode: 'CLIENT_CERT_REQUIRED' } },
    );
  }
  return new RegistryError('TSG_REGISTRY', `request to ${host} failed: ${e?.message ?? String(err)}`, {
    cause: err,
    temporary: isRetryableNetworkError(err),
    data: { host, syscallCode: code || undefined },
  });
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
