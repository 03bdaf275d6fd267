/**
 * A fault-injecting HTTP proxy in front of the real registry, for what a
 * registry cannot be made to do: redirect blob GETs to a second host, answer
 * 429 with Retry-After, cut or corrupt bodies, drop connections mid-body,
 * throttle bodies (to interrupt a pull mid-blob), rewrite response headers
 * (a token realm or upload Location on another host), and go silent: never
 * answer (`hang`) or stop mid-body (`stall`). `startBlackHole` is a TCP
 * server that accepts and never says a word. The proxy itself can listen
 * with TLS (an https token realm on another host).
 *
 * Every request is logged (method, path, Range and Authorization headers) so
 * tests can assert on what the client sent.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as fs from 'node:fs';
import { type AddressInfo, type Socket, createServer as createTcpServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type Fault =
  | { kind: 'status429'; retryAfter: string }
  | { kind: 'redirect'; to: string }
  | { kind: 'truncate'; keep: number }
  | { kind: 'flip'; at: number }
  | { kind: 'drop'; after: number }
  | { kind: 'throttle'; chunk: number; delayMs: number }
  | { kind: 'respond'; status: number; headers: Record<string, string>; body: Buffer }
  /** Replaces `from` with `to` in one response header (any status), body untouched. */
  | { kind: 'rewrite'; header: string; from: string; to: string }
  /** Never answers: the request is held open until the proxy stops. */
  | { kind: 'hang' }
  /** Sends the headers and the first `after` body bytes, then nothing more. */
  | { kind: 'stall'; after: number };

export interface Rule {
  /** Which requests: method and a path test. */
  method?: string;
  path: RegExp;
  fault: Fault;
  /** How many matching requests get the fault (default: all). */
  times?: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
  at: number;
}

export interface FaultProxy {
  host: string;
  port: number;
  rules: Rule[];
  log: LoggedRequest[];
  /** Most blob GETs in flight at once since the last reset. */
  maxBlobsInFlight: number;
  resetCounters(): void;
  stop(): Promise<void>;
}

export async function startFaultProxy(opts: {
  upstream: string;
  /** Bind address (a second loopback address makes a "different host"). */
  bind?: string;
  /** Authorization to add upstream (for a CDN-like host that holds its own credentials). */
  upstreamAuth?: string;
  /** Listen with TLS (PEM files). */
  tls?: { cert: string; key: string };
}): Promise<FaultProxy> {
  const [upHost, upPort] = opts.upstream.split(':');
  const rules: Rule[] = [];
  const log: LoggedRequest[] = [];
  const sockets = new Set<Socket>();

  const take = (req: http.IncomingMessage): Fault | undefined => {
    for (const r of rules) {
      if (r.method && r.method !== req.method) continue;
      if (!r.path.test(req.url ?? '')) continue;
      if (r.times !== undefined) {
        if (r.times <= 0) continue;
        r.times--;
      }
      return r.fault;
    }
    return undefined;
  };

  let blobsInFlight = 0;
  const counters = { max: 0 };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) {
      blobsInFlight++;
      counters.max = Math.max(counters.max, blobsInFlight);
      let done = false;
      const finished = () => {
        if (!done) blobsInFlight--;
        done = true;
      };
      res.on('finish', finished);
      res.on('close', finished);
      // The throttled relay calls this before its last write: past it the
      // client may finish and start another download, so this one is done.
      (res as http.ServerResponse & { lastWrite?: () => void }).lastWrite = finished;
    }
    log.push({
      method: req.method ?? '',
      path: req.url ?? '',
      range: req.headers.range,
      authorization: req.headers.authorization,
      at: Date.now(),
    });
    const fault = take(req);
    if (fault?.kind === 'hang') return; // the socket is destroyed by stop()
    if (fault?.kind === 'status429') {
      req.resume();
      res.writeHead(429, { 'retry-after': fault.retryAfter, 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
      return;
    }
    if (fault?.kind === 'respond') {
      req.resume();
      res.writeHead(fault.status, { ...fault.headers, 'content-length': String(fault.body.length) });
      res.end(fault.body);
      return;
    }
    if (fault?.kind === 'redirect') {
      req.resume();
      res.writeHead(307, { location: `http://${fault.to}${req.url}` });
      res.end();
      return;
    }
    const headers = { ...req.headers, host: opts.upstream };
    if (opts.upstreamAuth) headers.authorization = opts.upstreamAuth;
    const up = http.request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers }, (upRes) => {
      const outHeaders = { ...upRes.headers };
      // Keep registry-issued absolute Locations pointing at us.
      if (typeof outHeaders.location === 'string') outHeaders.location = outHeaders.location.replace(`//${opts.upstream}`, `//${req.headers.host}`);
      void relay(fault, upRes, res, outHeaders);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };
  const server = opts.tls
    ? https.createServer({ cert: fs.readFileSync(opts.tls.cert), key: fs.readFileSync(opts.tls.key) }, handler)
    : http.createServer(handler);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function relay(fault: Fault | undefined, upRes: http.IncomingMessage, res: http.ServerResponse, headers: http.OutgoingHttpHeaders) {
    const status = upRes.statusCode ?? 502;
    if (fault?.kind === 'rewrite') {
      const name = fault.header.toLowerCase();
      const value = headers[name];
      if (typeof value === 'string') headers[name] = value.replace(fault.from, fault.to);
      fault = undefined;
    }
    if (!fault || (status !== 200 && status !== 206)) {
      res.writeHead(status, headers);
      upRes.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    if (fault.kind !== 'throttle') {
      for await (const c of upRes) chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    switch (fault.kind) {
      case 'truncate': {
        // A clean but short answer: Content-Length says the short length.
        const cut = body.subarray(0, Math.min(fault.keep, body.length));
        res.writeHead(status, { ...headers, 'content-length': String(cut.length) });
        res.end(cut);
        return;
      }
      case 'flip': {
        const copy = Buffer.from(body);
        const i = Math.min(fault.at, copy.length - 1);
        copy[i] = copy[i]! ^ 0xff;
        res.writeHead(status, headers);
        res.end(copy);
        return;
      }
      case 'drop': {
        // Full Content-Length promised, then the socket dies mid-body.
        res.writeHead(status, headers);
        res.write(body.subarray(0, Math.min(fault.after, body.length)), () => {
          setTimeout(() => res.socket?.destroy(), 20);
        });
        return;
      }
      case 'stall': {
        // Headers and a first part, then silence on an open connection.
        res.writeHead(status, headers);
        res.write(body.subarray(0, Math.min(fault.after, body.length)));
        return;
      }
      case 'throttle': {
        res.writeHead(status, headers);
        const total = Number(upRes.headers['content-length'] ?? NaN);
        let sent = 0;
        for await (const c of upRes) {
          const buf = c as Buffer;
          for (let off = 0; off < buf.length; off += fault.chunk) {
            if (res.destroyed) return;
            await sleep(fault.delayMs);
            const piece = buf.subarray(off, off + fault.chunk);
            if (sent + piece.length >= total) (res as http.ServerResponse & { lastWrite?: () => void }).lastWrite?.();
            res.write(piece);
            sent += piece.length;
          }
        }
        res.end();
        return;
      }
      default:
        res.writeHead(status, headers);
        res.end(body);
    }
  }

  await new Promise<void>((resolve) => server.listen(0, opts.bind ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `${opts.bind ?? '127.0.0.1'}:${port}`,
    port,
    rules,
    log,
    get maxBlobsInFlight() {
      return counters.max;
    },
    resetCounters() {
      counters.max = 0;
      log.length = 0;
    },
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface BlackHole {
  host: string;
  /** Connections accepted so far. */
  accepted: number;
  stop(): Promise<void>;
}

/** A TCP server on 127.0.0.1 that accepts connections, reads nothing back, and never answers. */
export async function startBlackHole(bind = '127.0.0.1'): Promise<BlackHole> {
  const sockets = new Set<Socket>();
  const state = { accepted: 0 };
  const server = createTcpServer((s) => {
    state.accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, bind, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `${bind}:${port}`,
    get accepted() {
      return state.accepted;
    },
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
