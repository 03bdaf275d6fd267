/**
 * The compression stages commit and `diff -o` write blobs with
 * (src/layer/compress.ts). The gzip stage deflates blocks in parallel; what
 * it writes must still be one ordinary gzip member that every reader takes:
 * Node's zlib, GNU gzip, pigz (and Go's compress/gzip through skopeo/umoci
 * in test/cli/commit-gzip.test.ts). The zstd stage runs zstd's own worker.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { decompress } from 'zstd-napi';
import { ParallelGzip, compressionStage } from '../../src/layer/compress.js';

const MB = 1 << 20;

/** Mixed content: text-like runs and pseudo-random bytes (deterministic). */
function content(n: number): Buffer {
  const out = Buffer.alloc(n);
  let seed = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    if ((i >> 14) % 3 === 0) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      out[i] = seed >>> 24;
    } else out[i] = 'int main(void) { return 0; }\n'.charCodeAt(i % 30);
  }
  return out;
}

async function run(stage: NodeJS.ReadWriteStream, data: Buffer, chunk: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) chunks.push(data.subarray(i, i + chunk));
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), stage, new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
  return Buffer.concat(out);
}

const tool = (cmd: string, args: string[], input: Buffer) => spawnSync(cmd, args, { input, maxBuffer: 64 * MB });

describe('parallel gzip', () => {
  for (const n of [0, 1, 4097, MB - 1, MB, MB + 1, 3 * MB + 12345]) {
    it(`${n} bytes: one gzip member that zlib, GNU gzip and pigz decode to the input`, async () => {
      const data = content(n);
      const gz = await run(new ParallelGzip(), data, 65536 + 7);
      assert.ok(zlib.gunzipSync(gz).equals(data), 'zlib');
      const g = tool('gzip', ['-dc'], gz);
      assert.equal(g.status, 0, g.stderr.toString());
      assert.ok(g.stdout.equals(data), 'GNU gzip');
      const p = tool('pigz', ['-dc'], gz);
      assert.equal(p.status, 0, p.stderr.toString());
      assert.ok(p.stdout.equals(data), 'pigz');
      // A single member: its raw deflate body alone inflates to everything, and the
      // trailer carries the CRC-32 and size of the whole input.
      assert.ok(zlib.inflateRawSync(gz.subarray(10, gz.length - 8)).equals(data), 'one deflate stream');
      assert.equal(gz.readUInt32LE(gz.length - 8), zlib.crc32(data));
      assert.equal(gz.readUInt32LE(gz.length - 4), n);
    });
  }

  it('the same input gives the same bytes however it is chunked, and compresses like one gzip -6 stream', async () => {
    const data = content(5 * MB);
    const a = await run(new ParallelGzip(), data, 512);
    const b = await run(new ParallelGzip(), data, 3 * MB);
    assert.equal(createHash('sha256').update(a).digest('hex'), createHash('sha256').update(b).digest('hex'));
    const single = zlib.gzipSync(data, { level: 6 });
    assert.ok(a.length <= single.length * 1.005, `parallel ${a.length} vs single stream ${single.length}`);
  });

  it('fails the stream when a block fails to compress instead of writing a short blob', async () => {
    const gz = new ParallelGzip(42); // an invalid level: every block errors on the pool
    await assert.rejects(run(gz, content(2 * MB), MB));
  });
});

describe('zstd stage', () => {
  it('writes standard frames that zstd-napi and the zstd CLI decode', async () => {
    const data = content(3 * MB + 1);
    const z = await run(compressionStage('zstd'), data, 100_000);
    assert.ok(decompress(z).equals(data));
    const r = tool('zstd', ['-dc'], z);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.ok(r.stdout.equals(data));
  });
});
