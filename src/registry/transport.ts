/**
 * HTTP transport to registries: picks https or http per host, trusts the
 * system CAs plus `certs.d/<host[:port]>/*.crt` from tsgraph's config dirs,
 * follows redirects by hand, and retries what is worth retrying.
 *
 * Redirects are followed manually (not by node-fetch) so that the rule is
 * ours and visible: an Authorization header never goes to a different origin
 * than the one it was issued for. Blob GETs are routinely redirected to CDNs
 * or object stores, which must not see registry credentials.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import fetch, { type RequestInit, type Response } from 'node-fetch';
import { RegistryError, isAbortError, BusyError } from '../errors.js';
import {
  DEFAULT_RETRY,
  type RetryPolicy,
  backoffDelay,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  waitBeforeRetry,
} from './retry.js';

export interface TransportOptions {
  /** Hosts (host[:port]) where plain http and unverified TLS are allowed. */
  insecureRegistries?: string[];
  /** Directories searched for `certs.d/<host>/` (first wins per file name). */
  configDirs?: string[];
  userAgent?: string;
  retry?: Partial<RetryPolicy>;
  /** Called before each retry; used for progress output. */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void;
}

export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: RequestInit['body'];
  signal?: AbortSignal | undefined;
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
  #insecure: Set<string>;
  #configDirs: string[];
  #agents = new Map<string, https.Agent>();
  #httpAgent = new http.Agent({ keepAlive: true });
  #userAgent: string;
  #onRetry: TransportOptions['onRetry'];

  constructor(options: TransportOptions = {}) {
    this.#insecure = new Set(options.insecureRegistries ?? []);
    this.#configDirs = options.configDirs ?? [];
    this.#userAgent = options.userAgent ?? 'tsgraph/0.1';
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#onRetry = options.onRetry;
  }

  /** True when http:// may be used for `host`. */
  allowsHttp(host: string): boolean {
    return this.#insecure.has(host) || isLoopbackHost(host);
  }

  /** True when TLS certificates of `host` are not verified (explicit --insecure-registry only). */
  skipsVerify(host: string): boolean {
    return this.#insecure.has(host);
  }

  #httpsAgent(host: string): https.Agent {
    let agent = this.#agents.get(host);
    if (agent) return agent;
    const extraCa: Buffer[] = [];
    let cert: Buffer | undefined;
    let key: Buffer | undefined;
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
        if (name.endsWith('.crt')) extraCa.push(fs.readFileSync(path));
        else if (name.endsWith('.cert') && !cert) cert = fs.readFileSync(path);
        else if (name.endsWith('.key') && !key) key = fs.readFileSync(path);
      }
    }
    agent = new https.Agent({
      keepAlive: true,
      ca: extraCa.length ? [...rootCertificates, ...extraCa.map((b) => b.toString())] : undefined,
      cert,
      key,
      rejectUnauthorized: !this.skipsVerify(host),
    });
    this.#agents.set(host, agent);
    return agent;
  }

  #agentFor(url: URL): http.Agent {
    return url.protocol === 'https:' ? this.#httpsAgent(url.host) : this.#httpAgent;
  }

  /**
   * One request with redirects followed. Authorization is dropped as soon as
   * a redirect leaves the origin of `url`.
   */
  async fetchOnce(url: string, options: SendOptions = {}): Promise<Response> {
    let current = new URL(url);
    const origin = current.origin;
    let method = options.method ?? 'GET';
    let body = options.body;
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...options.headers };
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sendHeaders = { ...headers };
      if (current.origin !== origin) {
        for (const h of Object.keys(sendHeaders)) if (h.toLowerCase() === 'authorization') delete sendHeaders[h];
      }
      const res = await fetch(current.href, {
        method,
        headers: sendHeaders,
        body,
        redirect: 'manual',
        agent: this.#agentFor(current),
        signal: options.signal as RequestInit['signal'],
        compress: false,
      });
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

  /** fetchOnce with the retry policy applied. Network failures become TsgraphErrors. */
  async send(url: string, options: SendOptions = {}): Promise<Response> {
    const attempts = options.retry === false ? 1 : this.retry.attempts;
    for (let attempt = 1; ; attempt++) {
      let res: Response | undefined;
      let failure: unknown;
      try {
        res = await this.fetchOnce(url, options);
      } catch (err) {
        if (isAbortError(err)) throw new BusyError('TSG_ABORTED', 'operation aborted', { cause: err });
        failure = err;
      }
      if (res && !isRetryableStatus(res.status)) return res;
      const retryable = res !== undefined || isRetryableNetworkError(failure);
      if (!retryable || attempt >= attempts) {
        if (res) return res;
        throw networkError(url, failure);
      }
      const retryAfter = res ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
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

/** Maps a fetch failure to TSG_UNREACHABLE / TSG_TLS / TSG_REGISTRY with a readable line. */
export function networkError(url: string, err: unknown): RegistryError {
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
