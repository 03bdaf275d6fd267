/**
 * Benchmark (not a test): A/B of layer apply with synchronous per-entry
 * syscalls (TSGRAPH_APPLY_BATCH=0, the old path) against batched native apply
 * (src/layer/apply-batch.ts), same layer, interleaved rounds, medians, on a
 * fresh tmpfs. Reports wall time, main-thread CPU (/proc/thread-self/schedstat)
 * and whole-process CPU (process.cpuUsage: pool threads and GC included).
 * The tar goes through openLayerTar('none') (TarTap sha256 + scan), as a pull does.
 * Run as root: node --import tsx bench/apply-batch-bench.ts [rounds]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyTar } from '../src/layer/apply.js';
import { openLayerTar } from '../src/layer/unpack.js';
import { overlayFormat } from '../src/layer/whiteout.js';
import { makeTar, type TarEntry } from '../test/helpers/image-builder.js';

const rounds = Number(process.argv[2] ?? 7);

/** CPU time of the calling thread (the main thread here), in ms. */
function threadCpuMs(): number {
  return Number(fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Sample {
  wall: number;
  main: number;
  proc: number;
}

async function once(dir: string, chunks: Buffer[], batch: boolean): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const main0 = threadCpuMs();
  const t0 = performance.now();
  const { tar: stream, tap, done } = openLayerTar(Readable.from(chunks, { objectMode: false }), 'none');
  await applyTar(dir, stream, { format: overlayFormat, pax: tap.pax, batch });
  await done;
  const wall = performance.now() - t0;
  const main = threadCpuMs() - main0;
  const c = process.cpuUsage(cpu0);
  return { wall, main, proc: (c.user + c.system) / 1e3 };
}

/** Feeds the tar in 1 MiB slices, as a decompressor would. */
function slices(tar: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < tar.length; i += 1 << 20) out.push(tar.subarray(i, i + (1 << 20)));
  return out;
}

async function layer(name: string, entries: TarEntry[], base: string): Promise<void> {
  const tar = await makeTar(entries);
  const chunks = slices(tar);
  const samples: Record<'old' | 'new', Sample[]> = { old: [], new: [] };
  for (let r = 0; r < rounds; r++) {
    // Alternate which goes first, so a drift in machine load hits both.
    for (const mode of r % 2 ? (['new', 'old'] as const) : (['old', 'new'] as const)) {
      const dir = join(base, `${name}-${mode}-${r}`);
      fs.mkdirSync(dir);
      samples[mode].push(await once(dir, chunks, mode === 'new'));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const m = (mode: 'old' | 'new', k: keyof Sample) => median(samples[mode].map((s) => s[k]));
  const row = (label: string, k: keyof Sample) =>
    `  ${label.padEnd(22)} old ${m('old', k).toFixed(0).padStart(6)}  new ${m('new', k).toFixed(0).padStart(6)}  new/old ${(m('new', k) / m('old', k)).toFixed(2)}`;
  console.log(`${name}: ${entries.length} entries, ${(tar.length / 1e6).toFixed(0)} MB of tar, median of ${rounds} rounds (ms)`);
  console.log(row('wall', 'wall'));
  console.log(row('main-thread CPU', 'main'));
  console.log(row('process CPU', 'proc'));
}

const base = fs.mkdtempSync(join(tmpdir(), 'tsgraph-apply-batch-bench-'));
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4g', 'tsgraph-bench', base]);
try {
  const small: TarEntry[] = [];
  for (let i = 0; i < 20000; i++) small.push({ path: `d${i % 200}/s${i % 13}/f${i}`, content: randomBytes(2048).toString('hex') });
  await layer('20k files of 4 KiB', small, base);
  const big: TarEntry[] = [];
  const sizes = [16 << 10, 128 << 10, 512 << 10, 900 << 10, 3 << 20];
  for (let i = 0; i < 400; i++) big.push({ path: `b${i % 20}/f${i}`, content: randomBytes(sizes[i % sizes.length]! / 2).toString('hex') });
  await layer('400 files of 16 KiB-3 MiB', big, base);
} finally {
  execFileSync('umount', ['-l', base]);
  fs.rmSync(base, { recursive: true, force: true });
}
