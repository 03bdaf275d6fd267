/**
 * Benchmark (not a test): commit of ~100 MB of container changes
 * (500 files of 100 KB + 10 of 5 MB, content sliced from /usr binaries and
 * libraries so it compresses like real layers) vs `tar -c | gzip` and
 * `tar -c | zstd` of the same upper dir, interleaved in one run on tmpfs.
 * Wall and CPU (user+sys, this process incl. its threads / the pipeline's
 * processes) per step; medians. tsgraph's commit also builds the stored
 * layer from the blob (the peers' pipelines do not; docker/podman commit do):
 * its `blob` column is commit up to the written blob, `layer` the rest.
 * Run as root: node --import tsx bench/commit-bench.ts [rounds] [gzip,zstd]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../src/store/store.js';
import { commitTimings } from '../src/store/commit.js';
import { makeImage, makeLayer, writeOciLayout } from '../test/helpers/image-builder.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const KINDS = (process.argv[3] ?? 'gzip,zstd').split(',') as Array<'gzip' | 'zstd'>;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** ~110 MB of real content from /usr (headers, then binaries), concatenated. */
function pool(bytes: number): Buffer {
  const out: Buffer[] = [];
  let n = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (n >= bytes) return;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const b = fs.readFileSync(p);
        out.push(b);
        n += b.length;
      }
    }
  };
  for (const d of ['/usr/include', '/usr/bin', '/usr/lib/x86_64-linux-gnu']) walk(d);
  return Buffer.concat(out).subarray(0, bytes);
}

function timeShell(cmd: string): { wall: number; cpu: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', 'sh', '-c', cmd], { encoding: 'utf8' });
  const [e, u, s] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
  return { wall: e! * 1000, cpu: (u! + s!) * 1000 };
}

const base = fs.mkdtempSync(join(tmpdir(), 'tsgraph-commit-bench-'));
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8g', 'tsgraph-bench', base]);
type Row = { wall: number[]; cpu: number[]; blob: number[]; layer: number[]; blobCpu: number[]; layerCpu: number[] };
const rows = new Map<string, Row>();
const add = (k: string, wall: number, cpu: number, blob = 0, layer = 0, blobCpu = 0, layerCpu = 0) => {
  const r = rows.get(k) ?? { wall: [], cpu: [], blob: [], layer: [], blobCpu: [], layerCpu: [] };
  r.blobCpu.push(blobCpu);
  r.layerCpu.push(layerCpu);
  r.wall.push(wall);
  r.cpu.push(cpu);
  r.blob.push(blob);
  r.layer.push(layer);
  rows.set(k, r);
};
try {
  const layout = join(base, 'layout');
  writeOciLayout(layout, [{ tag: 'v1', image: makeImage({ layers: [await makeLayer([{ path: 'etc/hostname', content: 'base\n' }], 'gzip')] }) }]);
  const store = await Store.open({ root: join(base, 'root'), driver: 'overlay' });
  const { image } = await store.pull(`oci:${layout}:v1`);
  const { container, path } = await store.mount(image.name, { name: 'bench' });
  const data = pool(110 << 20);
  let off = 0;
  const slice = (n: number) => {
    if (off + n > data.length) off = 0;
    const b = data.subarray(off, off + n);
    off += n;
    return b;
  };
  for (let d = 0; d < 10; d++) {
    fs.mkdirSync(join(path, `d${d}`));
    for (let i = 0; i < 50; i++) fs.writeFileSync(join(path, `d${d}/f${i}`), slice(100 << 10));
    fs.writeFileSync(join(path, `d${d}/big`), slice(5 << 20));
  }
  const upper = store.driver.layerPaths(container.id).own;
  const tarSize = Number(execFileSync('sh', ['-c', `tar -C ${upper} -cf - . | wc -c`], { encoding: 'utf8' }));
  console.log(`upper: 510 files, tar ${(tarSize / 1e6).toFixed(1)} MB`);

  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of KINDS) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const res = await store.commit('bench', `bench:${kind}${r}`, { compress: kind });
      const wall = performance.now() - t0;
      const c = process.cpuUsage(c0);
      add(`tsgraph ${kind}`, wall, (c.user + c.system) / 1000, commitTimings.blobMs, commitTimings.layerMs, commitTimings.blobCpuMs, commitTimings.layerCpuMs);
      if (r === 0) console.log(`${kind} blob ${(res.layer.size / 1e6).toFixed(1)} MB`);
      const peer = kind === 'gzip' ? 'gzip' : 'zstd';
      const p = timeShell(`tar -C ${upper} -cf - . | ${peer} > /dev/null`);
      add(`tar|${peer}`, p.wall, p.cpu);
      // Keep the store small: drop the committed image (its layer and blob go with gc).
      await store.removeImage(`bench:${kind}${r}`);
      await store.gc();
    }
  }
  await store.removeContainer('bench');
  await store.close();
} finally {
  execFileSync('umount', ['-l', base]);
  fs.rmSync(base, { recursive: true, force: true });
}

console.log(`commit of ~100 MB of changes, medians of ${ROUNDS} (ms)`);
console.log('what'.padEnd(14), ...['wall', 'cpu', 'blob', 'blob cpu', 'layer', 'layer cpu'].map((h) => h.padStart(10)));
for (const [k, r] of rows) {
  console.log(k.padEnd(14), ...[r.wall, r.cpu, r.blob, r.blobCpu, r.layer, r.layerCpu].map((xs) => median(xs).toFixed(0).padStart(10)));
}
for (const kind of KINDS) {
  const t = rows.get(`tsgraph ${kind}`)!;
  const p = rows.get(`tar|${kind}`)!;
  console.log(`${kind}: tsgraph/peer wall ${(median(t.wall) / median(p.wall)).toFixed(2)} (blob only ${(median(t.blob) / median(p.wall)).toFixed(2)}), cpu ${(median(t.cpu) / median(p.cpu)).toFixed(2)} (blob only ${(median(t.blobCpu) / median(p.cpu)).toFixed(2)})`);
}
