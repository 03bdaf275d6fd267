/**
 * A small pool of worker threads that decompress layer blobs and hash their
 * tars (inflate-worker.ts), and the main-thread half of a job: it feeds the
 * worker copies of the blob's chunks and, for each batch that comes back, runs
 * the TarScanner (every byte, in order, on this thread) and writes what the
 * scanner forwards to the tar stream.
 *
 * Idle workers are kept (up to IDLE_MAX) and unref'd, so they never hold the
 * process open; a job's worker is ref'd only while this side waits for it. A
 * job that fails or is abandoned tells its worker to drop it (stale messages
 * carry the old job id and are ignored); a worker that stopped is replaced. If no worker can start (missing file, resource limits), the
 * pool says so once and openLayerTar falls back to the in-thread pipeline.
 */
import { availableParallelism } from 'node:os';
import type { PassThrough, Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { Digest } from '../digest.js';
import { TsgraphError, fromSystemError, type ErrorCode } from '../errors.js';
import type { Compression } from '../oci/media-types.js';
import type { FromWorker, ToWorker } from './inflate-worker.js';
import type { TarScanner } from './tar-scan.js';

/** Input chunks in flight to a worker (each ≤ IN_BATCH bytes). */
const IN_CREDITS = 4;
/** Compressed bytes are copied into batches of this size (never transferred: they may be pool slices). */
const IN_BATCH = 128 << 10;
const IDLE_MAX = Math.max(1, Math.min(4, availableParallelism()));

// Compiled, the worker is the .js next to this file. Under tsx the sources are .ts, and a worker
// does not get tsx's loader hooks from the inherited --import on Node 20: it registers them first.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCE ? './inflate-worker.ts' : './inflate-worker.js', import.meta.url);

function spawn(): Worker {
  if (!FROM_SOURCE) return new Worker(WORKER_URL);
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(boot, { eval: true });
}

const idle: Worker[] = [];
let broken = false;
let nextId = 1;

/** False once a worker failed to start: later layers go straight to the in-thread path. */
export function workersUsable(): boolean {
  return !broken;
}

function dropIdle(w: Worker): void {
  const i = idle.indexOf(w);
  if (i >= 0) idle.splice(i, 1);
}

// Listeners are removed by name: removeAllListeners() on a Worker also drops Node's own and stalls it.
const idleWatch = new WeakMap<Worker, () => void>();

function take(): Worker {
  const w = idle.pop();
  if (w) {
    const watch = idleWatch.get(w)!;
    w.off('error', watch).off('exit', watch);
    return w;
  }
  return factory ? factory() : spawn();
}

let factory: (() => Worker) | undefined;

/** Tests: replace how workers are made (e.g. one that cannot start) and forget a past failure. */
export function setInflateWorkerFactory(make: (() => Worker) | undefined): void {
  factory = make;
  broken = false;
}

function giveBack(w: Worker): void {
  if (idle.length >= IDLE_MAX) {
    void w.terminate();
    return;
  }
  w.unref();
  // An idle worker that dies is just forgotten.
  const watch = () => dropIdle(w);
  idleWatch.set(w, watch);
  w.on('error', watch).on('exit', watch);
  idle.push(w);
}

/** Terminates the idle workers (tests, or a caller that wants a clean exit right now). */
export async function closeInflatePool(): Promise<void> {
  const ws = idle.splice(0);
  await Promise.all(ws.map((w) => w.terminate()));
}

export function toLayerError(err: unknown): TsgraphError {
  return err instanceof TsgraphError
    ? err
    : fromSystemError(err) ?? new TsgraphError('TSG_INVALID_LAYER', `layer blob does not decompress: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

export interface WorkerJob {
  /** Settles with the diffId when the blob went through, or rejects with a TsgraphError. */
  done: Promise<Digest>;
}

/**
 * Runs one blob through a worker. Resolves `started` with undefined when the
 * worker could not start before any byte was read (the caller falls back).
 */
export function inflateInWorker(blob: Readable, compression: Compression, scanner: TarScanner, out: PassThrough): Promise<WorkerJob | undefined> {
  let worker: Worker;
  try {
    worker = take();
  } catch {
    broken = true;
    return Promise.resolve(undefined);
  }
  const id = nextId++;
  const send = (msg: ToWorker, transfer?: ArrayBuffer[]) => worker.postMessage(msg, transfer);
  return new Promise<WorkerJob | undefined>((startResolve) => {
    let started = false;
    let settled = false;
    let workerAlive = true;
    let inFlight = 0; // input batches the worker has not taken
    let owedAcks = 0; // output batches written while `out` was full: acked on drain
    let blobEnded = false;
    let staging = Buffer.allocUnsafeSlow(IN_BATCH); // not zero-filled: only `staged` bytes are sent
    let staged = 0;
    let resolveDone!: (d: Digest) => void;
    let rejectDone!: (e: unknown) => void;
    const done = new Promise<Digest>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    done.catch(() => {}); // the caller awaits it once started; no unhandled rejection meanwhile

    // Keep the process alive only while we wait for the worker, not while the tar's reader is idle.
    const updateRef = () => (owedAcks > 0 || settled ? worker.unref() : worker.ref());

    const finish = (err: unknown, digest?: Digest) => {
      if (settled) return;
      settled = true;
      startResolve({ done }); // (an error before the worker was ready ends the job too)
      unlisten();
      blob.removeListener('data', onData).removeListener('end', onEnd).removeListener('error', onBlobError).removeListener('close', onBlobClose);
      blob.on('error', () => {}); // a late error from a blob we are done with is nobody's concern
      out.removeListener('drain', onDrain).removeListener('close', onOutClose);
      if (err === undefined) {
        giveBack(worker);
        out.end();
        resolveDone(digest!);
        return;
      }
      // The worker drops the job and is reused (spawning one costs ~30 ms, ~300 ms under tsx);
      // one that stopped is not.
      if (workerAlive) {
        send({ type: 'abort', id });
        giveBack(worker);
      } else void worker.terminate();
      const e = toLayerError(err);
      blob.destroy();
      out.destroy(e);
      rejectDone(e);
    };

    const flushStaging = () => {
      if (staged === 0) return;
      const buf = staging.buffer as ArrayBuffer;
      // A short last batch is sliced so the worker sees only real bytes.
      const msgBuf = staged === IN_BATCH ? buf : buf.slice(0, staged);
      staging = Buffer.allocUnsafeSlow(IN_BATCH);
      staged = 0;
      inFlight++;
      send({ type: 'data', id, buf: msgBuf }, [msgBuf]);
      if (inFlight >= IN_CREDITS) blob.pause();
    };
    const onData = (chunk: Buffer) => {
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(IN_BATCH - staged, chunk.length - off);
        staging.set(chunk.subarray(off, off + n), staged);
        staged += n;
        off += n;
        if (staged === IN_BATCH) flushStaging();
      }
    };
    const onEnd = () => {
      blobEnded = true;
      flushStaging();
      send({ type: 'end', id });
    };
    const onBlobError = (err: Error) => finish(err);
    // A blob destroyed without an error ends with 'close' alone: settle then too, or `done`
    // would wait forever and the ref'd worker would keep the process alive.
    const onBlobClose = () => {
      if (!blobEnded) finish(new TsgraphError('TSG_INVALID_LAYER', 'the layer blob stream closed before its end'));
    };
    const onDrain = () => {
      for (; owedAcks > 0; owedAcks--) send({ type: 'ack', id });
      updateRef();
    };
    const onOutClose = () => finish(new TsgraphError('TSG_INVALID_LAYER', 'the layer tar was closed before its blob was read to the end'));

    const onMessage = (msg: FromWorker) => {
      if (settled || msg.id !== id) return;
      switch (msg.type) {
        case 'ready':
          started = true;
          startResolve({ done });
          blob.on('data', onData).on('end', onEnd);
          out.on('drain', onDrain).on('close', onOutClose);
          // Either side may have gone away while the worker was starting.
          if (out.destroyed) return onOutClose();
          if (blob.destroyed && !blob.readableEnded) return onBlobClose();
          blob.resume();
          return;
        case 'consumed':
          inFlight--;
          if (inFlight < IN_CREDITS && !blobEnded && blob.isPaused()) blob.resume();
          return;
        case 'out': {
          const chunk = Buffer.from(msg.buf, 0, msg.length);
          let n: number;
          try {
            n = scanner.scan(chunk);
          } catch (err) {
            finish(err);
            return;
          }
          // Only the archive (up to its end marker) goes on; the rest was hashed and checked.
          if (n > 0 && !out.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            owedAcks++;
            updateRef();
          } else {
            send({ type: 'ack', id });
          }
          return;
        }
        case 'done':
          try {
            scanner.end();
          } catch (err) {
            finish(err);
            return;
          }
          finish(undefined, msg.digest as Digest);
          return;
        case 'error': {
          const cause = Object.assign(new Error(msg.message), msg.code ? { code: msg.code } : {});
          finish(msg.tsgCode ? new TsgraphError(msg.tsgCode as ErrorCode, msg.message, { cause }) : cause);
          return;
        }
      }
    };
    const onWorkerDown = (err: unknown) => {
      if (!started) {
        // Nothing was read from the blob yet: the caller can still go the in-thread way.
        broken = true;
        settled = true;
        unlisten();
        blob.removeListener('error', onBlobError).removeListener('close', onBlobClose); // the in-thread pipeline listens now
        void worker.terminate();
        startResolve(undefined);
        return;
      }
      workerAlive = false;
      finish(new TsgraphError('TSG_INTERNAL', `the decompression worker stopped: ${(err as Error)?.message ?? `exit ${String(err)}`}`, { cause: err }));
    };

    const unlisten = () => worker.off('message', onMessage).off('error', onWorkerDown).off('exit', onWorkerDown);
    blob.pause();
    blob.on('error', onBlobError).on('close', onBlobClose);
    worker.on('message', onMessage).on('error', onWorkerDown).on('exit', onWorkerDown);
    worker.ref();
    send({ type: 'start', id, compression });
  });
}
