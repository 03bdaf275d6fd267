/**
 * openLayerTar off the main thread (inflate-pool.ts + inflate-worker.ts):
 * the worker path gives the same tar bytes and diffId as the in-thread path,
 * fails with the same codes, never passes tar bytes after an error, and never
 * leaves a worker that keeps the process alive.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import { sha256 } from '../../src/digest.js';
import { TsgraphError } from '../../src/errors.js';
import { closeInflatePool, setInflateWorkerFactory, workersUsable } from '../../src/layer/inflate-pool.js';
import { type InflateMode, openLayerTar } from '../../src/layer/unpack.js';
import type { Compression } from '../../src/oci/media-types.js';
import { makeTar, type TarEntry } from '../helpers/image-builder.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const MODES: InflateMode[] = ['thread', 'worker'];
const tmp = makeTempDir('tsgraph-inflate-');
after(async () => {
  removeDir(tmp);
  await closeInflatePool();
});

/** A mix: many small files, a few of 256-768 KiB (random, incompressible), text; several output batches. */
let sample: Promise<Buffer> | undefined;
function sampleTar(): Promise<Buffer> {
  sample ??= buildSample();
  return sample;
}

async function buildSample(): Promise<Buffer> {
  const entries: TarEntry[] = [{ path: 'd', type: 'directory' }];
  for (let i = 0; i < 300; i++) entries.push({ path: `d/f${i}`, content: `file ${i}\n`.repeat(i % 50) });
  for (let i = 0; i < 3; i++) entries.push({ path: `big${i}`, content: randomBytes((1 + i) << 18) });
  entries.push({ path: 'text', content: Buffer.from('abcdefgh'.repeat(100_000)) });
  return makeTar(entries);
}

const compressedCache = new Map<string, Buffer>();
function compressed(raw: Buffer, compression: Compression): Buffer {
  const key = `${compression}:${sha256(raw)}`;
  let out = compressedCache.get(key);
  if (!out) compressedCache.set(key, (out = compress(raw, compression)));
  return out;
}

function compress(raw: Buffer, compression: Compression): Buffer {
  if (compression === 'gzip') return gzipSync(raw);
  if (compression === 'zstd') return zstdCompress(raw);
  return raw;
}

/** The blob in uneven pieces (1 byte .. 200 KiB), as a network would hand it over. */
function pieces(bytes: Buffer): Readable {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < bytes.length; i++) {
    const n = [1, 7, 512, 4096, 65_536, 200_000][i % 6]!;
    out.push(bytes.subarray(off, off + n));
    off += n;
  }
  return Readable.from(out, { objectMode: false });
}

interface Outcome {
  tar: Buffer;
  digest?: string;
  error?: unknown;
  /** Tar bytes that came out after `done` rejected (must be none). */
  late: number;
}

async function run(blob: Readable, compression: Compression, mode: InflateMode): Promise<Outcome> {
  const { tar, tap, done } = openLayerTar(blob, compression, { mode });
  const chunks: Buffer[] = [];
  let failed = false;
  let late = 0;
  tar.on('data', (c: Buffer) => (failed ? (late += c.length) : chunks.push(c)));
  tar.on('error', () => {});
  try {
    await done;
    return { tar: Buffer.concat(chunks), digest: tap.digest, late };
  } catch (error) {
    failed = true;
    await new Promise((r) => setTimeout(r, 50)); // let anything queued show itself
    return { tar: Buffer.concat(chunks), error, late };
  }
}

function assertLayerError(error: unknown, code: string, re?: RegExp): void {
  assert.ok(error instanceof TsgraphError, `expected a TsgraphError, got ${String(error)}`);
  assert.equal(error.code, code);
  if (re) assert.match(error.message, re);
}

describe('openLayerTar: worker vs in-thread', () => {
  test('same tar bytes and diffId for gzip, zstd and none, trailer after the end marker included', async () => {
    const archive = await sampleTar();
    // Zero padding after the end marker is allowed: hashed (diffId), not forwarded.
    const raw = Buffer.concat([archive, Buffer.alloc(70_000)]);
    for (const compression of ['gzip', 'zstd', 'none'] as Compression[]) {
      const blob = compressed(raw, compression);
      for (const mode of MODES) {
        const got = await run(pieces(blob), compression, mode);
        assert.equal(got.error, undefined, `${compression}/${mode}: ${String(got.error)}`);
        assert.equal(got.digest, sha256(raw), `${compression}/${mode} diffId`);
        assert.ok(got.tar.length <= archive.length && got.tar.length >= archive.length - 10240, `${compression}/${mode} forwards the archive only`);
        assert.ok(got.tar.equals(archive.subarray(0, got.tar.length)), `${compression}/${mode} tar bytes`);
      }
    }
    assert.ok(workersUsable(), 'the worker path was taken, not the fallback');
  });

  test('data after the end marker: TSG_INVALID_LAYER in both modes', async () => {
    const raw = Buffer.concat([await sampleTar(), Buffer.alloc(4096), Buffer.from('hidden')]);
    for (const compression of ['gzip', 'zstd'] as Compression[]) {
      for (const mode of MODES) {
        const got = await run(pieces(compressed(raw, compression)), compression, mode);
        assertLayerError(got.error, 'TSG_INVALID_LAYER', /after the end-of-archive/);
      }
    }
  });

  test('a corrupt blob mid-stream: TSG_INVALID_LAYER or a wrong diffId, the same in both modes, no tar byte after an error', async () => {
    const raw = await sampleTar();
    for (const compression of ['gzip', 'zstd'] as Compression[]) {
      const blob = Buffer.from(compressed(raw, compression));
      const at = Math.floor(blob.length / 2);
      for (let i = 0; i < 64; i++) blob[at + i] = blob[at + i]! ^ 0x5a;
      const outcomes: string[] = [];
      for (const mode of MODES) {
        const got = await run(pieces(blob), compression, mode);
        // Damage inside a stored (incompressible) block decodes to other bytes: only the diffId sees it.
        // Bytes before an error may be garbage too (gzip finds damage at its CRC); the diffId catches them.
        if (got.error === undefined) assert.notEqual(got.digest, sha256(raw));
        else assertLayerError(got.error, 'TSG_INVALID_LAYER');
        assert.equal(got.late, 0, `${compression}/${mode}: nothing after the error`);
        outcomes.push(got.error === undefined ? `digest ${got.digest}` : `error ${(got.error as Error).message}`);
      }
      assert.equal(outcomes[0], outcomes[1], `${compression}: both modes agree`);
    }
  });

  test('a truncated blob fails with TSG_INVALID_LAYER', async () => {
    const raw = await sampleTar();
    for (const compression of ['gzip', 'zstd', 'none'] as Compression[]) {
      const blob = compressed(raw, compression);
      for (const mode of MODES) {
        const got = await run(pieces(blob.subarray(0, Math.floor(blob.length * 0.7))), compression, mode);
        assertLayerError(got.error, 'TSG_INVALID_LAYER');
        assert.equal(got.late, 0);
      }
    }
  });

  test('a mislabelled blob fails with TSG_INVALID_LAYER naming both', async () => {
    const raw = await sampleTar();
    const cases: Array<[Compression, Compression]> = [
      ['gzip', 'zstd'],
      ['zstd', 'gzip'],
      ['none', 'gzip'],
      ['gzip', 'none'],
    ];
    for (const [actual, declared] of cases) {
      for (const mode of MODES) {
        const got = await run(pieces(compressed(raw, actual)), declared, mode);
        assertLayerError(got.error, 'TSG_INVALID_LAYER', new RegExp(`declared as ${declared}`));
        assert.equal(got.tar.length, 0);
      }
    }
  });

  test('an error from the blob stream itself settles done', async () => {
    for (const mode of MODES) {
      const blob = new Readable({ read() {} });
      blob.push(gzipSync(Buffer.alloc(1 << 20)).subarray(0, 1000));
      setImmediate(() => blob.destroy(Object.assign(new Error('disk says no'), { code: 'ENOSPC' })));
      const got = await run(blob, 'gzip', mode);
      assertLayerError(got.error, 'TSG_NO_SPACE');
    }
  });

  test('a blob destroyed without an error (close, no end) settles done in both modes', async () => {
    for (const mode of MODES) {
      const blob = new Readable({ read() {} });
      blob.push(gzipSync(randomBytes(1 << 20)).subarray(0, 4000));
      setImmediate(() => blob.destroy()); // the source goes away: 'close' and nothing else
      const { tar, done } = openLayerTar(blob, 'gzip', { mode });
      tar.resume();
      tar.on('error', () => {});
      const outcome = await Promise.race([
        done.then(() => 'resolved', (e: unknown) => (e instanceof Error ? 'rejected' : 'odd')),
        new Promise((r) => setTimeout(r, 5000, 'unsettled')),
      ]);
      assert.equal(outcome, 'rejected', `${mode}: done must reject when the blob closes early`);
    }
  });

  test('the consumer destroying the tar mid-stream settles done and frees the worker', async () => {
    const raw = await sampleTar();
    for (const compression of ['gzip', 'zstd'] as Compression[]) {
      const { tar, done } = openLayerTar(pieces(compressed(raw, compression)), compression, { mode: 'worker' });
      tar.once('data', () => tar.destroy());
      await assert.rejects(done, (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_INVALID_LAYER');
    }
    // The pool still works afterwards.
    const again = await run(pieces(compressed(raw, 'zstd')), 'zstd', 'worker');
    assert.equal(again.digest, sha256(raw));
  });

  test('a worker that cannot start: the in-thread path takes over', async () => {
    await closeInflatePool();
    setInflateWorkerFactory(() => new Worker('throw new Error("no worker today")', { eval: true }));
    try {
      const raw = await sampleTar();
      const got = await run(pieces(compressed(raw, 'zstd')), 'zstd', 'worker');
      assert.equal(got.digest, sha256(raw));
      assert.equal(workersUsable(), false);
    } finally {
      setInflateWorkerFactory(undefined);
    }
  });

  test('no worker keeps the process alive: after success, failure and an abandoned tar, it exits', async () => {
    const script = join(tmp, 'exit-check.mts');
    const unpack = new URL('../../src/layer/unpack.ts', import.meta.url).href;
    fs.writeFileSync(
      script,
      `import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { openLayerTar } from ${JSON.stringify(unpack)};
const tar = Buffer.concat([Buffer.alloc(512, 0), Buffer.alloc(1024)]);
const big = gzipSync(Buffer.alloc(64 << 20));
// 1: success
const a = openLayerTar(Readable.from([gzipSync(Buffer.alloc(1024))]), 'gzip', { mode: 'worker' });
a.tar.resume();
await a.done;
// 2: failure
const b = openLayerTar(Readable.from([Buffer.from('not gzip at all')]), 'gzip', { mode: 'worker' });
b.tar.resume();
b.tar.on('error', () => {});
await b.done.catch(() => {});
// 3: a tar nobody reads (the worker waits on credits) and a destroyed one
// (64 MiB of zeros: the scanner may also refuse it as padding past 1 MiB; either way it must end.)
const c = openLayerTar(Readable.from([big]), 'gzip', { mode: 'worker' });
c.tar.on('error', () => {});
c.done.catch(() => {});
const d = openLayerTar(Readable.from([big]), 'gzip', { mode: 'worker' });
d.tar.on('error', () => {});
d.tar.once('data', () => d.tar.destroy());
await d.done.catch(() => {});
console.log('end of script', tar.length);
`,
    );
    const t0 = Date.now();
    const res = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(res.signal, null, `the process did not exit by itself (${Date.now() - t0} ms): ${res.stderr}`);
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /end of script/);
  });
});
