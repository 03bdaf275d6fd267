/**
 * `npm run bench`: tsgraph against podman, containerd, skopeo+umoci and the
 * floors (curl | pigz -d | tar -x, curl | zstd -d | tar -x) in ONE run, on a
 * tmpfs and on a fresh loop ext4, medians of --runs (default 5), fresh store
 * each run; then the smaller steps (bench/micro.ts). Prints the tables,
 * writes JSON + SVG (bench/results/latest.* or quick.* with --quick).
 *
 *   node --import tsx bench/run.ts [--quick] [--runs N] [--json] [--fs tmpfs,ext4]
 *        [--only pull,micro] [--out DIR] [--no-install] [--tsgraph CHECKOUT] [--from RESULT.json]
 * --tsgraph measures another checkout's dist/ (e.g. a `git archive` of an older
 * commit with node_modules and build/ next to it) for A/B runs.
 *
 * Runs as root inside its own mount namespace (it re-executes itself under
 * `unshare -m --propagation private`), so a mount it leaves behind cannot
 * reach the host; it still unmounts, detaches and stops everything itself,
 * on success, failure and Ctrl-C.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type ImageInfo, buildImages, describe, pushImages } from './images.js';
import { bigPull, changes, cliStart, mountLayers } from './micro.js';
import { type Contender, type Target, availableContenders, tsgraphDir } from './peers.js';
import { startRegistry } from './registry.js';
import { type Cell, type Comp, type Fs, type Results, renderSvg, renderTables } from './report.js';
import { cleanupAll, installSignalHandlers, log, makeLoopExt4, makeTmpfs, median, onCleanup, run, type Scratch, stopping } from './util.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    json: { type: 'boolean', default: false },
    fs: { type: 'string', default: 'tmpfs,ext4' },
    only: { type: 'string', default: 'pull,micro' },
    out: { type: 'string', default: join(import.meta.dirname, 'results') },
    'no-install': { type: 'boolean', default: false },
    tsgraph: { type: 'string' },
    from: { type: 'string' },
  },
});

if (args.from) {
  // Re-render a saved run: the table on stdout, the SVG next to the JSON.
  const saved = JSON.parse(fs.readFileSync(args.from, 'utf8')) as Results;
  saved.meta.machine.loadavg ??= [];
  fs.writeFileSync(args.from.replace(/\.json$/, '') + '.svg', renderSvg(saved));
  process.stdout.write(`${saved.meta.images.join('\n')}\n\n${renderTables(saved)}\n`);
  process.exit(0);
}

if (!process.env.TSGRAPH_BENCH_NS) {
  // Own mount namespace: whatever is mounted in it dies with it.
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, TSGRAPH_BENCH_NS: '1' },
  });
  process.exit(r.status ?? 1);
}

const quick = args.quick!;
const runs = Math.max(1, Math.min(50, Number(args.runs ?? (quick ? 2 : 5))));
const fsList = args.fs!.split(',').filter((f): f is Fs => f === 'tmpfs' || f === 'ext4');
const only = new Set(args.only!.split(','));
if (args.tsgraph) tsgraphDir.root = fs.realpathSync(args.tsgraph);

function machine(): Results['meta']['machine'] {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return {
    cpu: cpu.trim(),
    cores: os.cpus().length,
    ramGb: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    fs: 'tmpfs, and a fresh ext4 on a loop device per run (backing file on a tmpfs)',
    loadavg: os.loadavg().map((x) => Number(x.toFixed(1))),
  };
}

/**
 * A private copy of the tsgraph under test (dist/, the addon, package.json;
 * node_modules linked): a `npm run build` elsewhere during the run cannot
 * change what is measured half-way.
 */
function snapshot(from: string, to: string): string {
  fs.mkdirSync(join(to, 'build', 'Release'), { recursive: true });
  fs.cpSync(join(from, 'dist'), join(to, 'dist'), { recursive: true });
  fs.copyFileSync(join(from, 'build', 'Release', 'tsgraph_native.node'), join(to, 'build', 'Release', 'tsgraph_native.node'));
  fs.copyFileSync(join(from, 'package.json'), join(to, 'package.json'));
  fs.symlinkSync(join(from, 'node_modules'), join(to, 'node_modules'));
  return to;
}

function gitRev(dir: string): string {
  try {
    const rev = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no', 'src', 'native'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${rev} + uncommitted changes in src/native` : rev;
  } catch {
    return `not a git checkout: ${dir}`;
  }
}

async function versions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const cmds: Record<string, string[]> = {
    podman: ['podman', '--version'],
    containerd: ['containerd', '--version'],
    skopeo: ['skopeo', '--version'],
    umoci: ['umoci', '--version'],
    pigz: ['pigz', '--version'],
    zstd: ['zstd', '--version'],
    tar: ['tar', '--version'],
  };
  for (const [k, argv] of Object.entries(cmds)) {
    const r = await run(argv, { check: false }).catch(() => undefined);
    if (r && r.code === 0) out[k] = (r.stdout + r.stderr).trim().split('\n')[0]!;
  }
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the bench mounts filesystems: run it as root');
  installSignalHandlers();
  const { ready, skipped } = await availableContenders(!args['no-install']);
  for (const k of skipped) log(`skipping ${k.name}: ${k.why}`);
  const parent = fs.mkdtempSync(join(os.tmpdir(), 'tsgraph-bench-'));
  onCleanup(`scratch dir ${parent}`, () => fs.rmSync(parent, { recursive: true, force: true }));
  const git = gitRev(tsgraphDir.root);
  tsgraphDir.root = snapshot(tsgraphDir.root, join(parent, 'tsgraph'));
  // Registry storage and loop backing files: RAM, so disk noise from other work never enters a number.
  const base = makeTmpfs(parent, '16g');
  const images = await buildImages(quick, parent);
  for (const img of [images.debian.gzip, images.debian.zstd, images.big]) log(describe(img));
  const registry = await startRegistry(join(base.dir, 'registry'));
  log(`registry on ${registry.host}; pushing`);
  await pushImages(images, registry.host, base.dir);

  const results: Results = {
    meta: {
      date: new Date().toISOString(),
      quick,
      runs,
      git,
      machine: machine(),
      images: [images.debian.gzip, images.debian.zstd, images.big].map(describe),
      skipped,
      versions: await versions(),
    },
    pull: {},
    repull: {},
    kinds: Object.fromEntries(ready.map((c) => [c.name, c.kind])),
  };

  if (only.has('pull')) {
    const repulls: Record<string, number[]> = {};
    for (const fsKind of fsList) {
      for (const comp of ['gzip', 'zstd'] as const) {
        const who = ready.filter((c) => c.compressions.includes(comp));
        const times: Record<string, number[]> = {};
        const failed: Record<string, string> = {};
        for (let r = 0; r < runs; r++) {
          // Rotate the order each round so no contender always runs right after another's cleanup.
          const order = who.map((_, i) => who[(i + r) % who.length]!);
          for (const c of order) {
            if (stopping()) return;
            if (failed[c.name]) continue;
            const res = await measure(c, fsKind, comp, parent, base.dir, registry.host, images.debian[comp], fsKind === 'tmpfs' && comp === 'gzip');
            if ('error' in res) {
              failed[c.name] = res.error;
              log(`  ${c.name} ${comp} ${fsKind}: FAILED ${res.error.split('\n')[0]}`);
              continue;
            }
            (times[c.name] ??= []).push(res.ms);
            if (res.repull !== undefined) (repulls[c.name] ??= []).push(res.repull);
            log(`  ${comp} ${fsKind} run ${r + 1}/${runs}: ${c.name} ${(res.ms / 1000).toFixed(2)} s${res.repull !== undefined ? `, re-pull ${(res.repull / 1000).toFixed(3)} s` : ''}`);
          }
        }
        const cells: Record<string, Cell> = {};
        for (const c of who) cells[c.name] = failed[c.name] ? { error: failed[c.name]! } : { median: median(times[c.name] ?? []), runs: times[c.name] ?? [] };
        ((results.pull[fsKind] ??= {}) as Record<Comp, Record<string, Cell>>)[comp] = cells;
      }
    }
    for (const [n, xs] of Object.entries(repulls)) results.repull[n] = { median: median(xs), runs: xs };
  }

  if (only.has('micro')) {
    log('micro: CLI start');
    results.cliStart = await cliStart(quick ? 5 : 15);
    log('micro: peak RSS of a pull of the one-big-layer image');
    results.bigPull = await bigPull(parent, registry.host, images, Math.min(runs, 3)).catch((e: Error) => ({ error: e.message }));
    results.mountLayers = await mountLayers(parent, [1, 128, 500], quick ? 10 : 40).catch((e: Error) => ({ error: e.message }));
    results.changes = await changes(parent, registry.host, images, runs, quick ? 20 : 100).catch((e: Error) => ({ error: e.message }));
    for (const k of ['bigPull', 'mountLayers', 'changes'] as const) {
      const v = results[k] as { error?: string } | undefined;
      if (v?.error) log(`micro ${k} FAILED: ${v.error}`);
    }
  }

  // Load at the end too: other work on the machine makes every wall time noisier (ratios less so).
  results.meta.machine.loadavgEnd = os.loadavg().map((x) => Number(x.toFixed(1)));
  const table = renderTables(results);
  fs.mkdirSync(args.out!, { recursive: true });
  const stem = join(args.out!, quick ? 'quick' : 'latest');
  fs.writeFileSync(`${stem}.json`, JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(`${stem}.svg`, renderSvg(results));
  if (args.json) {
    process.stderr.write(`${table}\n`);
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  } else {
    process.stdout.write(`\n${results.meta.images.join('\n')}\n\n${table}\n\nwritten: ${stem}.json, ${stem}.svg\n`);
  }
}

/** One timed run of one contender on a fresh filesystem; cleans up whatever happens. */
async function measure(
  c: Contender,
  fsKind: Fs,
  comp: Comp,
  parent: string,
  backing: string,
  registry: string,
  image: ImageInfo,
  withRepull: boolean,
): Promise<{ ms: number; repull?: number } | { error: string }> {
  let scratch: Scratch | undefined;
  let t: Target | undefined;
  try {
    scratch = fsKind === 'tmpfs' ? makeTmpfs(parent, '4g') : makeLoopExt4(parent, backing, '4G');
    t = { scratch, dir: join(scratch.dir, 'c'), registry, image };
    fs.mkdirSync(t.dir);
    await c.setup?.(t);
    const ms = await c.pullMount(t);
    const repull = withRepull && c.repull ? await c.repull(t) : undefined;
    return repull === undefined ? { ms } : { ms, repull };
  } catch (err) {
    return { error: `${comp}: ${(err as Error).message}` };
  } finally {
    if (t) await c.teardown?.(t).catch((e: Error) => log(`teardown of ${c.name}: ${e.message}`));
    await scratch?.dispose();
  }
}

try {
  await main();
} catch (err) {
  log(`failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  await cleanupAll();
}
