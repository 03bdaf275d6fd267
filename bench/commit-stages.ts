/**
 * Benchmark helper (not a test): the commit blob pipeline stage by stage on
 * one tree, to see where the time goes (generator alone, + sha256, + compression).
 * node --import tsx bench/commit-stages.ts <tree> [stages...]
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { overlayChanges } from '../src/layer/changes.js';
import { generateLayerTar } from '../src/layer/generate.js';
import { HashStream } from '../src/util/hash-stream.js';
import { createGzip } from 'node:zlib';
import { CompressStream } from 'zstd-napi';
import { compressionStage } from '../src/layer/compress.js';

const root = process.argv[2]!;
const what = process.argv.slice(3);
let outBytes = 0;
const sink = () => new Writable({ write(c: Buffer, _e, cb) { outBytes += c.length; cb(); } });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const res = new Map<string, { walls: number[]; cpus: number[]; out: number }>();
for (let r = 0; r < Number(process.env.ROUNDS ?? 5); r++) {
  for (const w of what) {
    const { walls, cpus } = res.get(w) ?? res.set(w, { walls: [], cpus: [], out: 0 }).get(w)!;
    outBytes = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const changes = overlayChanges(root, []);
    const stages: NodeJS.ReadWriteStream[] = [];
    if (w !== 'gen') stages.push(new HashStream());
    // `-old`: the single-stream stages commit used before (zlib gzip stream, zstd on the main thread).
    if (w === 'gzip-old') stages.push(createGzip());
    else if (w === 'zstd-old') stages.push(new CompressStream() as unknown as NodeJS.ReadWriteStream);
    else if (w === 'gzip' || w === 'zstd') stages.push(compressionStage(w));
    await pipeline([generateLayerTar(changes, { root, source: 'overlay-upper' }), ...stages, sink()] as never);
    walls.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1000);
    res.get(w)!.out = outBytes;
  }
}
for (const [w, { walls, cpus, out }] of res) {
  console.log(w.padEnd(12), 'wall', median(walls).toFixed(0).padStart(6), 'cpu', median(cpus).toFixed(0).padStart(6), 'out', out);
}
