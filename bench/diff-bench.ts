/**
 * Benchmark (not a test): time to find the changes of a container that
 * changed ONE file, on a small and on a large image.
 *   native  overlay diff: walks only the container's upper dir
 *   naive   tsgraph's tree comparison of image vs container views
 *   peer    GNU `diff -rq` over the same two trees, run side by side
 * Prints medians and ratios; native should stay flat as the image grows.
 * Run as root: node --import tsx bench/diff-bench.ts [smallFiles] [largeFiles]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hexOf } from '../src/digest.js';
import { naiveChanges } from '../src/layer/changes.js';
import { Store } from '../src/store/store.js';
import { type TarEntry, makeImage, makeLayer, writeOciLayout } from '../test/helpers/image-builder.js';

const sizes = [Number(process.argv[2] ?? 200), Number(process.argv[3] ?? 20000)];
const RUNS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function time(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}
async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const base = fs.mkdtempSync(join(tmpdir(), 'tsgraph-bench-'));
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4g', 'tsgraph-bench', base]);
const rows: Array<{ files: number; native: number; naive: number; peer: number }> = [];
try {
  for (const files of sizes) {
    const entries: TarEntry[] = [];
    for (let i = 0; i < files; i++) entries.push({ path: `d${i % 100}/sub${i % 7}/f${i}`, content: `file ${i}\n`.repeat(8) });
    const layout = join(base, `layout-${files}`);
    writeOciLayout(layout, [{ tag: 'v1', image: makeImage({ layers: [await makeLayer(entries, 'gzip')] }) }]);
    const store = await Store.open({ root: join(base, `root-${files}`), driver: 'overlay' });
    const { image } = await store.pull(`oci:${layout}:v1`);
    const { container, path } = await store.mount(image.name, { name: 'bench' });
    fs.appendFileSync(join(path, 'd1/sub1/f1'), 'changed\n');
    const imageRoot = await store.driver.get(hexOf(container.parent!), { readOnly: true });

    const native: number[] = [];
    const naive: number[] = [];
    const peer: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      native.push(
        await timeAsync(async () => {
          const d = await store.diff('bench');
          if (d.method !== 'native' || d.changes.length !== 3) throw new Error(`unexpected diff ${JSON.stringify(d.changes)}`);
        }),
      );
      naive.push(time(() => naiveChanges(imageRoot, path)));
      peer.push(time(() => spawnSync('diff', ['-rq', imageRoot, path])));
    }
    rows.push({ files, native: median(native), naive: median(naive), peer: median(peer) });
    await store.driver.put(hexOf(container.parent!));
    await store.removeContainer('bench');
    await store.close();
  }
} finally {
  execFileSync('umount', ['-l', base]);
  fs.rmSync(base, { recursive: true, force: true });
}

console.log('diff of a container that changed one file (median of %d runs, ms)', RUNS);
console.log('files'.padStart(8), 'native'.padStart(9), 'naive'.padStart(9), 'diff -rq'.padStart(9), 'naive/native'.padStart(13), 'diff-rq/native'.padStart(15));
for (const r of rows) {
  console.log(
    String(r.files).padStart(8),
    r.native.toFixed(2).padStart(9),
    r.naive.toFixed(2).padStart(9),
    r.peer.toFixed(2).padStart(9),
    (r.naive / r.native).toFixed(1).padStart(12) + 'x',
    (r.peer / r.native).toFixed(1).padStart(14) + 'x',
  );
}
const [small, large] = rows;
console.log(
  `growth from ${small!.files} to ${large!.files} files: native ${(large!.native / small!.native).toFixed(2)}x, naive ${(large!.naive / small!.naive).toFixed(1)}x, diff -rq ${(large!.peer / small!.peer).toFixed(1)}x`,
);
