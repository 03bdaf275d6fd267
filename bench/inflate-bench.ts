/**
 * Benchmark (not a test): openLayerTar → drain, in-thread vs worker, gzip and
 * zstd, interleaved A/B rounds in one process. Prints wall time, the main
 * thread's CPU (from /proc/self/task/<pid>/stat: that is the thread the event
 * loop, tar parsing and apply share) and the whole process's CPU.
 *
 *   node --import tsx bench/inflate-bench.ts <layer.tar> [rounds]
 *
 * It compresses the tar itself (pigz, zstd -3) next to it when the .gz/.zst are missing.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { openLayerTar, type InflateMode } from '../src/layer/unpack.js';
import type { Compression } from '../src/oci/media-types.js';

const tarPath = process.argv[2];
if (!tarPath) throw new Error('usage: inflate-bench.ts <layer.tar> [rounds] [modes]');
const rounds = Number(process.argv[3] ?? 5);
const modes = (process.argv[4] ?? 'thread,worker').split(',') as InflateMode[];
const blobs: Record<Compression, string> = { none: tarPath, gzip: `${tarPath}.gz`, zstd: `${tarPath}.zst` };
if (!fs.existsSync(blobs.gzip)) execFileSync('sh', ['-c', `pigz -6 -c "${tarPath}" > "${blobs.gzip}"`]);
if (!fs.existsSync(blobs.zstd)) execFileSync('zstd', ['-q', '-3', '-T2', tarPath, '-o', blobs.zstd]);

const TICK = 100; // USER_HZ: /proc stat times are in 1/100 s
function mainThreadCpuMs(): number {
  const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK; // utime, stime
}

async function once(compression: Compression, mode: InflateMode): Promise<{ wall: number; main: number; total: number; digest: string }> {
  const c0 = process.cpuUsage();
  const m0 = mainThreadCpuMs();
  const t0 = performance.now();
  const { tar, tap, done } = openLayerTar(fs.createReadStream(blobs[compression], { highWaterMark: 1 << 16 }), compression, { mode });
  let bytes = 0;
  tar.on('data', (c: Buffer) => (bytes += c.length));
  await Promise.all([done, new Promise((res, rej) => tar.on('end', res).on('error', rej))]);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  if (bytes === 0) throw new Error('nothing came out');
  return { wall, main: mainThreadCpuMs() - m0, total: (c.user + c.system) / 1000, digest: tap.digest };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results = new Map<string, Array<{ wall: number; main: number; total: number }>>();
const digests = new Map<Compression, string>();
for (let r = 0; r < rounds; r++) {
  for (const compression of ['gzip', 'zstd'] as Compression[]) {
    for (const mode of modes) {
      const res = await once(compression, mode);
      const prev = digests.get(compression);
      if (prev && prev !== res.digest) throw new Error(`digest differs between modes for ${compression}`);
      digests.set(compression, res.digest);
      const key = `${compression} ${mode}`;
      results.set(key, [...(results.get(key) ?? []), res]);
    }
  }
}
console.log(`openLayerTar → drain of ${(fs.statSync(tarPath).size / 1e6).toFixed(0)} MB of tar, median of ${rounds} (ms)`);
console.log('case             wall   main-thread CPU   process CPU');
for (const [key, xs] of results) {
  const w = median(xs.map((x) => x.wall));
  const m = median(xs.map((x) => x.main));
  const t = median(xs.map((x) => x.total));
  console.log(`${key.padEnd(15)} ${w.toFixed(0).padStart(5)}   ${m.toFixed(0).padStart(15)}   ${t.toFixed(0).padStart(11)}`);
}
