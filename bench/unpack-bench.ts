/**
 * Benchmark (not a test): unpacking one gzip layer, tsgraph vs GNU tar, side
 * by side on the same tmpfs. tsgraph's number includes what tar skips:
 * sha256 of the tar stream (diffId), path checks, whiteout handling.
 * Run as root: node --import tsx bench/unpack-bench.ts [files] [bytesPerFile]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyTar } from '../src/layer/apply.js';
import { openLayerTar } from '../src/layer/unpack.js';
import { naiveFormat, overlayFormat } from '../src/layer/whiteout.js';
import { layerFromTar, makeTar, type TarEntry } from '../test/helpers/image-builder.js';

const files = Number(process.argv[2] ?? 20000);
const size = Number(process.argv[3] ?? 4096);
const RUNS = 3;

const base = fs.mkdtempSync(join(tmpdir(), 'tsgraph-unpack-bench-'));
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8g', 'tsgraph-bench', base]);
try {
  const entries: TarEntry[] = [];
  for (let i = 0; i < files; i++) entries.push({ path: `d${i % 200}/s${i % 13}/f${i}`, content: randomBytes(size / 2).toString('hex') });
  const layer = layerFromTar(await makeTar(entries), 'gzip');
  const blob = join(base, 'layer.tar.gz');
  fs.writeFileSync(blob, layer.bytes);
  const mb = (files * size) / 1e6;

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const measure = async (label: string, fn: (dir: string) => Promise<void> | void) => {
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const dir = join(base, `${label}-${r}`);
      fs.mkdirSync(dir);
      const t = performance.now();
      await fn(dir);
      times.push(performance.now() - t);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return median(times);
  };
  const gnu = await measure('gnu', (dir) => {
    execFileSync('tar', ['-xzf', blob, '-C', dir]);
  });
  const ours = async (format: typeof overlayFormat) => (dir: string) =>
    (async () => {
      const { tar, tap, done } = openLayerTar(fs.createReadStream(blob), 'gzip');
      await applyTar(dir, tar, { format, pax: tap.pax });
      tar.resume();
      await done;
      if (tap.digest !== layer.diffId) throw new Error('diffId mismatch');
    })();
  const overlay = await measure('overlay', await ours(overlayFormat));
  const naive = await measure('naive', await ours(naiveFormat));
  console.log(`one gzip layer: ${files} files, ${mb.toFixed(0)} MB uncompressed, median of ${RUNS} (ms)`);
  console.log(`GNU tar -xzf            ${gnu.toFixed(0).padStart(7)}   1.00x`);
  console.log(`tsgraph (overlay fmt)   ${overlay.toFixed(0).padStart(7)}   ${(overlay / gnu).toFixed(2)}x  (+ sha256 diffId, path checks)`);
  console.log(`tsgraph (naive fmt)     ${naive.toFixed(0).padStart(7)}   ${(naive / gnu).toFixed(2)}x`);
} finally {
  execFileSync('umount', ['-l', base]);
  fs.rmSync(base, { recursive: true, force: true });
}
