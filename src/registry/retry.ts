/**
 * Retry policy for registry traffic: network errors, 5xx and 429 are retried
 * with capped exponential backoff; a `Retry-After` header (seconds or an HTTP
 * date) is honoured up to `maxRetryAfterMs`; a longer one is not waited
 * for (the transport gives the answer back at once). Every loop is bounded
 * by `attempts`, and every single try by the limits in timeouts.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { throwIfAborted } from '../errors.js';

export interface RetryPolicy {
  /** Total tries, first one included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest Retry-After we are willing to wait. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 4_000,
  maxRetryAfterMs: 60_000,
};

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** Parses Retry-After into milliseconds (undefined when absent or unreadable). */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const when = Date.parse(trimmed);
  return Number.isNaN(when) ? undefined : Math.max(0, when - now);
}

/** Delay before try number `attempt` (1-based retries), with ±20% jitter. */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  const raw = Math.min(policy.baseDelayMs * 2 ** (attempt - 1), policy.maxDelayMs);
  return Math.round(raw * (0.8 + Math.random() * 0.4));
}

export async function waitBeforeRetry(ms: number, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  await sleep(ms, undefined, signal ? { signal } : undefined).catch(() => undefined);
  throwIfAborted(signal);
}

/** System error codes worth another try. Refused connections are not: nothing is listening. */
const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  // A limit from timeouts.ts ran out: the peer went quiet, it may answer the next time.
  'TSG_TIMEOUT',
  'TSG_CONNECT_TIMEOUT',
]);

export function isRetryableNetworkError(err: unknown): boolean {
  const e = err as { code?: string; errno?: string; type?: string; message?: string };
  if (e?.code && RETRYABLE_NETWORK_CODES.has(e.code)) return true;
  if (e?.errno && RETRYABLE_NETWORK_CODES.has(e.errno)) return true;
  return /socket hang up|premature close|terminated|other side closed/i.test(e?.message ?? '');
}

/**
 * `request` then `read` (a small body: manifest, tag list, token), with the
 * whole exchange tried again when *reading the body* fails with a temporary
 * network error (a stall past the idle limit, a cut connection). Failures of
 * `request` itself are not repeated here: the transport already retried
 * them. Same budget as the transport's.
 */
export async function retryBodyRead<R, T>(
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  request: () => Promise<R>,
  read: (res: R) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const res = await request();
    try {
      return await read(res);
    } catch (err) {
      const e = err as { code?: string; temporary?: boolean; status?: number; cause?: unknown };
      const network = e.code === 'TSG_TIMEOUT' || isRetryableNetworkError(err) || (e.status === undefined && e.temporary === true && isRetryableNetworkError(e.cause));
      if (!network || attempt >= policy.attempts || signal?.aborted) throw err;
      await waitBeforeRetry(backoffDelay(policy, attempt), signal);
    }
  }
}
