/**
 * The smaller steps: CLI start, peak RSS of a 1 GB-layer pull, create+mount /
 * umount of 1/128/500-layer images, diff of one changed file, and commit of
 * 100 MB of changes against `tar -c | gzip` / `| zstd` of the same upper dir.
 * Library steps use the compiled library (dist/index.js), like the CLI rows.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type * as Lib from '../src/index.js';
import { type TarEntry, makeImage, makeLayer, writeOciLayout } from '../test/helpers/image-builder.js';
import { semiCompressible, type BenchImages } from './images.js';
import { cli, tsgraphDir } from './peers.js';
import { log, makeTmpfs, median, run, sh } from './util.js';

async function lib(): Promise<typeof Lib> {
  return (await import(join(tsgraphDir.root, 'dist', 'index.js'))) as typeof Lib;
}

export interface Sample {
  median: number;
  runs: number[];
}
const sample = (xs: number[]): Sample => ({ median: median(xs), runs: xs.map((x) => Number(x.toFixed(3))) });

/** `tsgraph --version` vs `node -e 0`, interleaved. */
export async function cliStart(reps: number): Promise<{ tsgraph: Sample; node: Sample }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < reps; i++) {
    a.push((await run(['node', cli(), '--version'])).ms);
    b.push((await run(['node', '-e', '0'])).ms);
  }
  return { tsgraph: sample(a), node: sample(b) };
}

/** Peak RSS (KB → MB) and wall time of `tsgraph pull` of the one-big-layer image, fresh tmpfs each run. */
export async function bigPull(parent: string, registry: string, images: BenchImages, reps: number): Promise<{ rssMb: Sample; seconds: Sample }> {
  const rss: number[] = [];
  const secs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = makeTmpfs(parent, '4g');
    try {
      const r = await run(['/usr/bin/time', '-f', 'TSGRAPH_BENCH_TIME %M %e', 'node', cli(), '--root', join(t.dir, 'root'), 'pull', '-q',
        `${registry}/${images.big.name}`], { timeoutMs: 600_000 });
      const m = /TSGRAPH_BENCH_TIME (\d+) ([\d.]+)/.exec(r.stderr);
      if (!m) throw new Error(`no /usr/bin/time line in ${r.stderr.slice(-300)}`);
      rss.push(Number(m[1]) / 1024);
      secs.push(Number(m[2]));
    } finally {
      await t.dispose();
    }
  }
  return { rssMb: sample(rss), seconds: sample(secs) };
}

/** create+mount and umount of an image with `layers` tiny layers, through the library. */
export async function mountLayers(parent: string, counts: number[], reps: number): Promise<Record<string, { mount: Sample; umount: Sample; kernel: Sample }>> {
  const { Store } = await lib();
  // The kernel's part: the same overlay (image lowers + an empty upper) through tsgraph's mount module alone.
  const mnt = (await import(join(tsgraphDir.root, 'dist', 'mount', 'index.js'))) as typeof import('../src/mount/index.js');
  const out: Record<string, { mount: Sample; umount: Sample; kernel: Sample }> = {};
  const t = makeTmpfs(parent, '2g');
  try {
    const layout = join(t.dir, 'layout');
    const tagged = [];
    for (const n of counts) {
      const layers = [];
      for (let i = 0; i < n; i++) {
        const entries: TarEntry[] = [{ path: `l${i}/`, type: 'directory' }, { path: `l${i}/f`, content: `layer ${i}\n` }];
        layers.push(await makeLayer(entries, 'gzip'));
      }
      tagged.push({ tag: `n${n}`, image: makeImage({ layers }) });
    }
    writeOciLayout(layout, tagged);
    const store = await Store.open({ root: join(t.dir, 'root'), driver: 'overlay' });
    try {
      for (const n of counts) {
        log(`micro: create+mount / umount, ${n} layers, ${reps} times`);
        const { image } = await store.pull(`oci:${layout}:n${n}`);
        const mounts: number[] = [];
        const umounts: number[] = [];
        let top: string | undefined;
        for (let i = 0; i < reps; i++) {
          const name = `m${n}-${i}`;
          const t0 = performance.now();
          const { container } = await store.mount(image.name, { name });
          const t1 = performance.now();
          await store.umount(name);
          const t2 = performance.now();
          await store.removeContainer(name);
          mounts.push(t1 - t0);
          umounts.push(t2 - t1);
          top = container.parent?.slice(7);
        }
        const kernel: number[] = [];
        if (top) {
          const paths = store.driver.layerPaths(top);
          const k = join(t.dir, `kernel-${n}`);
          for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(join(k, d), { recursive: true });
          const spec = { type: 'overlay' as const, lowers: [paths.own, ...paths.parents], upper: join(k, 'upper'), work: join(k, 'work'), options: [] };
          for (let i = 0; i < reps; i++) {
            const t0 = performance.now();
            mnt.mount(spec, join(k, 'merged'));
            mnt.unmount(join(k, 'merged'));
            kernel.push(performance.now() - t0);
          }
        }
        out[String(n)] = { mount: sample(mounts), umount: sample(umounts), kernel: sample(kernel) };
      }
    } finally {
      await store.close();
    }
  } finally {
    await t.dispose();
  }
  return out;
}

export interface ChangeResults {
  diff: { library: Sample; cli: Sample };
  commit: { mb: number; gzip: Sample; zstd: Sample; tarGzip: Sample; tarZstd: Sample };
}

/** diff of one changed file in the debian image, then commit of `mb` MB of changes vs tar|gzip, tar|zstd. */
export async function changes(parent: string, registry: string, images: BenchImages, reps: number, mb: number): Promise<ChangeResults> {
  const { Store } = await lib();
  const t = makeTmpfs(parent, '6g');
  try {
    const root = join(t.dir, 'root');
    const store = await Store.open({ root, driver: 'overlay' });
    try {
      const ref = `${registry}/${images.debian.gzip.name}`;
      await store.pull(ref);
      const { container, path } = await store.mount(ref, { name: 'work' });
      fs.appendFileSync(join(path, 'etc', 'debian_version'), 'changed\n');
      log(`micro: diff of one changed file, ${reps * 2} times`);
      const libDiff: number[] = [];
      const cliDiff: number[] = [];
      for (let i = 0; i < reps * 2; i++) {
        const t0 = performance.now();
        const d = await store.diff('work');
        libDiff.push(performance.now() - t0);
        if (d.changes.length < 1) throw new Error('diff found no change');
        cliDiff.push((await run(['node', cli(), '--root', root, 'diff', 'work'])).ms);
      }
      for (let i = 0; i < mb; i++) {
        fs.mkdirSync(join(path, 'srv', 'commit', `d${i % 10}`), { recursive: true });
        fs.writeFileSync(join(path, 'srv', 'commit', `d${i % 10}`, `f${i}.bin`), semiCompressible(1 << 20));
      }
      const upper = store.driver.layerPaths(container.id).own;
      log(`micro: commit of ${mb} MB vs tar|gzip and tar|zstd, ${reps} times`);
      const c = { gzip: [] as number[], zstd: [] as number[], tarGzip: [] as number[], tarZstd: [] as number[] };
      for (let i = 0; i < reps; i++) {
        let t0 = performance.now();
        await store.commit('work', `bench/commit:gzip${i}`, { compress: 'gzip' });
        c.gzip.push(performance.now() - t0);
        c.tarGzip.push((await sh(`tar -C '${upper}' -cf - . | gzip -6 > /dev/null`)).ms);
        t0 = performance.now();
        await store.commit('work', `bench/commit:zstd${i}`, { compress: 'zstd' });
        c.zstd.push(performance.now() - t0);
        c.tarZstd.push((await sh(`tar -C '${upper}' -cf - . | zstd -3 -q -c > /dev/null`)).ms);
      }
      await store.umount('work');
      return {
        diff: { library: sample(libDiff), cli: sample(cliDiff) },
        commit: { mb, gzip: sample(c.gzip), zstd: sample(c.zstd), tarGzip: sample(c.tarGzip), tarZstd: sample(c.tarZstd) },
      };
    } finally {
      await store.close();
    }
  } finally {
    await t.dispose();
  }
}
