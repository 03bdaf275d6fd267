/**
 * Bounded waits for registry traffic. A registry (or a proxy in front of it)
 * that accepts a connection and then goes quiet must not hang a pull: every
 * phase of a request has its own limit.
 *  - connect: TCP connect plus the TLS handshake (enforced by the agents
 *    below, on the socket itself);
 *  - response: from sending the request (its last body byte, for uploads)
 *    to the response headers;
 *  - idle: no byte for this long while reading a body, or while the request
 *    body is stuck (an upload that does not drain).
 * Only waits on the network count: a slow consumer of a body (backpressure)
 * never trips the idle limit.
 *
 * A timeout is a temporary RegistryError (`TSG_TIMEOUT`), retried within the
 * normal retry budget; the caller's AbortSignal still ends everything at once.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { RegistryError, UsageError } from '../errors.js';

export interface Timeouts {
  connectMs: number;
  responseMs: number;
  idleMs: number;
}

/**
 * docker and containerd dial with a 30 s limit; a registry may take a while
 * to answer the final PUT of a large upload (it moves the blob in its
 * storage), hence the longer response limit.
 */
export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 30_000, responseMs: 60_000, idleMs: 60_000 };

/** Seconds (fractions allowed) → ms; refuses anything that is not a positive number. */
export function parseSeconds(text: string, what: string): number {
  const s = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !Number.isFinite(s) || s <= 0 || s > 86_400) {
    throw new UsageError('TSG_USAGE', `${what} must be a number of seconds (> 0, at most 86400), got ${JSON.stringify(text)}`);
  }
  return Math.max(1, Math.round(s * 1000));
}

/**
 * `TSGRAPH_TIMEOUT` sets every limit (like wget's --timeout);
 * `TSGRAPH_CONNECT_TIMEOUT` then overrides the connect limit.
 */
export function timeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<Timeouts> {
  const out: Partial<Timeouts> = {};
  if (env.TSGRAPH_TIMEOUT) {
    const ms = parseSeconds(env.TSGRAPH_TIMEOUT, 'TSGRAPH_TIMEOUT');
    Object.assign(out, { connectMs: ms, responseMs: ms, idleMs: ms });
  }
  if (env.TSGRAPH_CONNECT_TIMEOUT) out.connectMs = parseSeconds(env.TSGRAPH_CONNECT_TIMEOUT, 'TSGRAPH_CONNECT_TIMEOUT');
  return out;
}

export type TimeoutPhase = 'connect' | 'response' | 'upload' | 'body';

const PHASE_WORDS: Record<TimeoutPhase, string> = {
  connect: 'connect',
  response: 'answer',
  upload: 'accept the request body',
  body: 'send more of the response body',
};

export function timeoutError(url: string, phase: TimeoutPhase, ms: number): RegistryError {
  let host = url;
  try {
    host = new URL(url).host;
  } catch {
    /* keep the raw text */
  }
  const seconds = ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${ms} ms`;
  return new RegistryError('TSG_TIMEOUT', `${host} did not ${PHASE_WORDS[phase]} within ${seconds} (${phase} timeout; see --timeout)`, {
    temporary: true,
    data: { host, phase, timeoutMs: ms },
  });
}

/** The code an agent puts on a socket it destroyed for a slow connect (node-fetch copies it onto its FetchError). */
export const CONNECT_TIMEOUT_CODE = 'TSG_CONNECT_TIMEOUT';

function armConnectTimer(socket: Duplex | null | undefined, ms: number, readyEvent: string): void {
  if (!socket) return;
  const timer = setTimeout(() => {
    socket.destroy(Object.assign(new Error(`connect timeout after ${ms} ms`), { code: CONNECT_TIMEOUT_CODE }));
  }, ms);
  // The connecting socket keeps the process alive; the timer itself must not.
  timer.unref();
  const clear = () => clearTimeout(timer);
  socket.once(readyEvent, clear);
  socket.once('close', clear);
}

/** http.Agent whose new sockets must connect within `connectMs`. */
export class TimedHttpAgent extends http.Agent {
  constructor(
    options: http.AgentOptions,
    private readonly connectMs: number,
  ) {
    super(options);
  }
  override createConnection(options: http.ClientRequestArgs, cb?: (err: Error | null, s: Duplex) => void): Duplex | null | undefined {
    const socket = super.createConnection(options, cb);
    armConnectTimer(socket, this.connectMs, 'connect');
    return socket;
  }
}

/** https.Agent whose new sockets must finish TCP connect and the TLS handshake within `connectMs`. */
export class TimedHttpsAgent extends https.Agent {
  constructor(
    options: https.AgentOptions,
    private readonly connectMs: number,
  ) {
    super(options);
  }
  override createConnection(options: https.RequestOptions, cb?: (err: Error | null, s: Duplex) => void): Duplex | null | undefined {
    const socket = super.createConnection(options, cb);
    armConnectTimer(socket, this.connectMs, 'secureConnect');
    return socket;
  }
}

/**
 * Re-emits `src` and fails with `onIdle()` when the network sends nothing
 * for `ms` while the consumer is waiting for data. The timer runs only
 * between a read request and the next chunk, so backpressure never counts.
 */
export class IdleGuard extends Readable {
  #src: Readable;
  #ms: number;
  #onIdle: () => Error;
  #timer: NodeJS.Timeout | undefined;
  #srcEnded = false;

  constructor(src: Readable, ms: number, onIdle: () => Error) {
    super();
    this.#src = src;
    this.#ms = ms;
    this.#onIdle = onIdle;
    // Bodies that are discarded with resume() have no error listener; a
    // timeout there must end the stream, not the process.
    this.on('error', () => {});
    src.on('data', (chunk: Buffer) => {
      if (this.push(chunk)) this.#arm();
      else {
        this.#disarm();
        src.pause();
      }
    });
    src.once('end', () => {
      this.#srcEnded = true;
      this.#disarm();
      this.push(null);
    });
    src.once('error', (err) => {
      this.#disarm();
      this.destroy(err);
    });
    src.once('close', () => {
      // Closed without 'end' or 'error' (destroyed quietly): a short body.
      if (!this.#srcEnded && !this.destroyed) {
        this.#disarm();
        this.destroy(Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      }
    });
    src.pause();
  }

  /** Starts the idle clock, or restarts it (refresh: no new timer per chunk on a fast stream). */
  #arm(): void {
    if (this.#timer) {
      this.#timer.refresh();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.destroy(this.#onIdle());
    }, this.#ms);
    // A body nobody reads to the end must not hold the process open.
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  override _read(): void {
    this.#arm();
    this.#src.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#disarm();
    if (!this.#src.destroyed) this.#src.destroy();
    cb(err);
  }
}

/**
 * A replayable request body read in 64 KiB pieces, reporting progress so the
 * sender can tell an upload that moves from one that is stuck.
 */
export function uploadStream(data: Buffer, onChunk: () => void, onEnd: () => void): Readable {
  let offset = 0;
  const piece = 64 << 10;
  const stream = new Readable({
    read() {
      if (offset >= data.length) {
        this.push(null);
        return;
      }
      onChunk();
      const end = Math.min(offset + piece, data.length);
      this.push(data.subarray(offset, end));
      offset = end;
    },
  });
  stream.once('end', onEnd);
  return stream;
}
