/**
 * The copy-up suite (`tsgraph bench copy-up`, `benchCopyUp()`): first-write
 * latency (p50/p99/max) and the bytes copy-up wrote, for a matrix of
 * targets (overlay with tsgraph's options, overlay+redirect_dir,
 * overlay+metacopy, vfs, btrfs) × operations (ops.ts) × file sizes.
 *
 * One image layer per driver holds `files(size)` fresh files per size (big
 * sizes get few: `clamp(byteBudget / size, 1, maxFiles)`). Each (target, op)
 * gets a fresh container on it, so every op meets cold files, and the layer
 * is copied at most once at a time (one 1 GiB file is 1 GiB of layer and at
 * most 1 GiB of copy). Per size, the op runs on every file (cold), bytes are
 * counted, then it runs again on every file (warm).
 */
import * as fs from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { backingFs } from '../drivers/probe.js';
import { throwIfAborted, toTsgraphError, UsageError } from '../errors.js';
import { pausePoint } from '../util/crash-point.js';
import { allocatedBytes, btrfsExclusiveBytes, COPY_UP_OPS, type CopyUpOp, runOp, touchedPath } from './ops.js';
import { type LatencyStats, latencyStats, median } from './stats.js';
import { filePath, type LayerPlan, linkPaths, planBytes, renameDirPath, syntheticLayerTar } from './synthetic-layer.js';
import { type LayerHost, openContainer, openLayerHost, parseTarget, type TargetDriver, type TargetSpec, unmountBelow } from './targets.js';

export { COPY_UP_OPS, OP_DESCRIPTIONS, type CopyUpOp } from './ops.js';
export { TARGET_NAMES } from './targets.js';
export type { LatencyStats } from './stats.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** Default sizes: 4 KiB to 1 GiB. */
export const DEFAULT_SIZES = [4 * KiB, 64 * KiB, MiB, 16 * MiB, 256 * MiB, GiB];
/** Drivers and overlay variants the copy-up benchmark measures by default. */
export const DEFAULT_TARGETS = ['overlay', 'overlay+redirect', 'overlay+metacopy', 'vfs', 'btrfs'];
/** Largest file size the suite makes. */
export const MAX_FILE_SIZE = 4 * GiB;

/** Options of {@link benchCopyUp}; every field has a default. */
export interface CopyUpOptions {
  /** Parent of the run's work dir (`copy-up-XXXXXX`, removed after). Default: the OS temp dir. Use a tmpfs or a fresh filesystem. */
  dir?: string | undefined;
  /** Targets: `overlay` (tsgraph's own options), `overlay+redirect`, `overlay+metacopy`, `vfs`, `btrfs`. Default: all five. */
  targets?: string[] | undefined;
  /** File sizes in bytes. Default {@link DEFAULT_SIZES}. */
  sizes?: number[] | undefined;
  /** Operations. Default: all of {@link COPY_UP_OPS}. */
  ops?: CopyUpOp[] | undefined;
  /** Most files timed per size and op (default 200). */
  maxFiles?: number | undefined;
  /** Bytes per size and op: files = clamp(byteBudget / size, 1, maxFiles) (default 64 MiB). */
  byteBudget?: number | undefined;
  /** rename-dir: directories renamed (default 10), each holding renameDirFiles files (default 200) of renameFileSize bytes (default 4 KiB). */
  renameDirs?: number | undefined;
  renameDirFiles?: number | undefined;
  renameFileSize?: number | undefined;
  /** Called as the run moves on (a line for people). */
  onProgress?: ((event: { target: string; step: string }) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** @deprecated use `targets` (was: drivers). */
  drivers?: string[] | undefined;
  /** @deprecated use `maxFiles` (was: files in the image). */
  files?: number | undefined;
  /** @deprecated use `sizes` (was: the one file size). */
  fileSize?: number | undefined;
}

/** Bytes the first run of an op left in the container's own layer, per file (per dir for rename-dir). */
export interface CopiedBytes {
  /**
   * How they were counted: `upper st_blocks` (overlay: allocated bytes of the
   * upper's copy), `st_blocks delta` (vfs: growth of the file in the
   * container's full copy), `btrfs exclusive` (bytes no longer shared with the
   * image snapshot, `btrfs filesystem du` after syncfs; used for every
   * driver whose layers are on btrfs, where copies may be reflinks). Blocks the op itself
   * added past the file's old end (an append) are not counted.
   */
  method: 'upper st_blocks' | 'st_blocks delta' | 'btrfs exclusive';
  p50: number;
  max: number;
  total: number;
  /** p50 / bytes of data per file (per dir for rename-dir): ~1 = a full copy, ~0 = metadata only. */
  ratio: number;
}

/** One cell of the matrix: a target, an operation, a file size. */
export interface CopyUpCell {
  target: string;
  driver: TargetDriver;
  op: CopyUpOp;
  /** File size in bytes (rename-dir: the size of each file in the dir). */
  size: number;
  /** Samples: files (rename-dir: directories). */
  files: number;
  /** rename-dir: files in each directory. */
  entriesPerDir?: number | undefined;
  /** First run: the file as the image has it (copy-up happens here). */
  first: LatencyStats;
  /** Second run on the same file, already copied. */
  second: LatencyStats;
  /** first.p50Us / second.p50Us. */
  ratio: number;
  copied: CopiedBytes;
  /** E.g. rename-dir met EXDEV and was timed as mv's copy + delete. */
  note?: string | undefined;
  /** The op failed (the cell has no samples). */
  error?: string | undefined;
}

/** @deprecated the per-driver result of the old single-op bench; now one cell of the matrix. */
export type CopyUpResult = CopyUpCell;

/** One measured target of the copy-up benchmark: name, driver and mount options. */
export interface CopyUpTargetInfo {
  name: string;
  driver: TargetDriver;
  mountOptions?: string[] | undefined;
  /** Filesystem the layers were on (btrfs: the loop file's, when the suite made one). */
  fsType?: string | undefined;
  /** Making the image layer (applyDiff of the synthetic tar), ms. */
  layerMs?: number | undefined;
  /** Median time to create and mount a container on it, ms (vfs copies the whole layer here). */
  containerMs?: number | undefined;
  /** Why the target did not run. */
  skipped?: string | undefined;
}

/** The result of {@link benchCopyUp}: settings, host, targets, and one cell per target × op × size. */
export interface CopyUpReport {
  kind: 'tsgraph-bench-copy-up';
  version: 1;
  startedAt: string;
  durationMs: number;
  host: { kernel: string; cpus: number; node: string; workDir: string; workFs: string };
  settings: {
    sizes: number[];
    ops: CopyUpOp[];
    maxFiles: number;
    byteBudget: number;
    /** Files per size (the same for every op). */
    filesPerSize: Record<string, number>;
    renameDirs: number;
    renameDirFiles: number;
    renameFileSize: number;
  };
  targets: CopyUpTargetInfo[];
  results: CopyUpCell[];
}

function checkCount(name: string, n: number, min: number, max: number): number {
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError('TSG_USAGE', `${name} must be an integer ${min}..${max} (got ${n})`, { data: { [name]: n } });
  return n;
}

/** Options with defaults filled and checked. */
function resolveOptions(o: CopyUpOptions) {
  const sizes = o.sizes ?? (o.fileSize !== undefined ? [o.fileSize] : DEFAULT_SIZES);
  if (sizes.length === 0) throw new UsageError('TSG_USAGE', 'no file sizes given');
  for (const s of sizes) checkCount('size', s, 1, MAX_FILE_SIZE);
  const ops = o.ops ?? [...COPY_UP_OPS];
  for (const op of ops) if (!COPY_UP_OPS.includes(op)) throw new UsageError('TSG_USAGE', `unknown op ${JSON.stringify(op)} (known: ${COPY_UP_OPS.join(', ')})`);
  const targets = (o.targets ?? o.drivers ?? DEFAULT_TARGETS).map(parseTarget);
  if (targets.length === 0) throw new UsageError('TSG_USAGE', 'no targets given');
  return {
    sizes: [...new Set(sizes)].sort((a, b) => a - b),
    ops: [...new Set(ops)],
    targets: targets.filter((t, i) => targets.findIndex((u) => u.name === t.name) === i),
    maxFiles: checkCount('maxFiles', o.maxFiles ?? o.files ?? 200, 1, 100_000),
    byteBudget: checkCount('byteBudget', o.byteBudget ?? 64 * MiB, 1, 64 * GiB),
    renameDirs: checkCount('renameDirs', o.renameDirs ?? 10, 1, 10_000),
    renameDirFiles: checkCount('renameDirFiles', o.renameDirFiles ?? 200, 1, 100_000),
    renameFileSize: checkCount('renameFileSize', o.renameFileSize ?? 4 * KiB, 1, 64 * MiB),
  };
}

type Resolved = ReturnType<typeof resolveOptions>;

type BytesMethod = CopiedBytes['method'];

/** On btrfs every driver's copies may be reflinks (overlay's copy-up and vfs's copy clone), which st_blocks counts as copied: ask btrfs. */
function bytesMethod(driver: TargetDriver, fsType: string): BytesMethod {
  if (driver === 'btrfs' || fsType === 'btrfs') return 'btrfs exclusive';
  return driver === 'overlay' ? 'upper st_blocks' : 'st_blocks delta';
}

/** Bytes each rel path's copy holds in the container's own layer. */
function measureBytes(method: BytesMethod, writable: string, rels: string[]): number[] {
  const paths = rels.map((r) => join(writable, r));
  return method === 'btrfs exclusive' ? btrfsExclusiveBytes(paths) : paths.map(allocatedBytes);
}

/** Lets the event loop run (a signal's handler, which aborts) at most every 50 ms, between timed ops. */
function yielder(): () => Promise<void> {
  let last = Date.now();
  return async () => {
    if (Date.now() - last < 50) return;
    for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    last = Date.now();
  };
}

/** Runs one op over one batch of files/dirs (rels) in a mounted container: cold runs, bytes, warm runs. */
async function runBatch(
  target: TargetSpec,
  method: BytesMethod,
  container: { root: string; writable: string },
  op: CopyUpOp,
  rels: string[],
  size: number,
  unitBytes: number,
  signal: AbortSignal | undefined,
): Promise<Omit<CopyUpCell, 'target' | 'driver' | 'op' | 'size' | 'files'>> {
  const breathe = yielder();
  // Overlay's upper starts empty; vfs's and btrfs's layers hold a full (copied or shared) tree already.
  const before = target.driver === 'overlay' ? rels.map(() => 0) : measureBytes(method, container.writable, rels);
  const first: number[] = [];
  let exdev = 0;
  for (const rel of rels) {
    await breathe();
    throwIfAborted(signal);
    const r = runOp(op, join(container.root, rel), size, 1);
    first.push(r.us);
    if (r.exdev) exdev++;
  }
  const after = measureBytes(method, container.writable, rels.map((r) => touchedPath(op, r)));
  // Overlay with index=off copies one name of a hardlinked pair up alone: the other keeps the old file.
  const split = op === 'hardlink' ? rels.filter((rel) => fs.lstatSync(join(container.root, rel)).ino !== fs.lstatSync(join(container.root, rel.replace(/\.a$/, '.b'))).ino).length : 0;
  // Blocks the op itself added (an append past the last block) are its own data, not a copy.
  const own = rels.map((rel) => {
    if (op === 'rename-dir') return 0;
    const st = fs.lstatSync(join(container.root, rel));
    const up = (n: number) => Math.ceil(n / st.blksize) * st.blksize;
    return Math.max(0, up(st.size) - up(size));
  });
  const second: number[] = [];
  for (const rel of rels) {
    await breathe();
    throwIfAborted(signal);
    second.push(runOp(op, join(container.root, rel), size, 2).us);
  }
  const copied = after.map((a, i) => Math.max(0, a - before[i]! - own[i]!));
  const p50 = median(copied);
  const f = latencyStats(first);
  const s = latencyStats(second);
  return {
    first: f,
    second: s,
    ratio: Math.round((f.p50Us / Math.max(s.p50Us, 0.1)) * 10) / 10,
    copied: { method, p50, max: copied.reduce((a, b) => Math.max(a, b), 0), total: copied.reduce((a, b) => a + b, 0), ratio: Math.round((p50 / unitBytes) * 1000) / 1000 },
    note: exdev
      ? `rename(2) failed with EXDEV ${exdev}/${rels.length} times (overlay without redirect_dir): timed as mv does it, copy + delete`
      : split
        ? `the write split ${split}/${rels.length} hardlinked pairs: the other name still shows the image's file`
        : undefined,
  };
}

function emptyCell(method: BytesMethod): Omit<CopyUpCell, 'target' | 'driver' | 'op' | 'size' | 'files'> {
  const none = latencyStats([]);
  return { first: none, second: none, ratio: 0, copied: { method, p50: 0, max: 0, total: 0, ratio: 0 } };
}

/** The (size, rels) batches an op runs over. */
function batchesFor(op: CopyUpOp, r: Resolved, filesFor: (size: number) => number): Array<{ size: number; rels: string[]; unitBytes: number; entriesPerDir?: number }> {
  if (op === 'rename-dir') {
    const rels = Array.from({ length: r.renameDirs }, (_, i) => renameDirPath(i));
    return [{ size: r.renameFileSize, rels, unitBytes: r.renameFileSize * r.renameDirFiles, entriesPerDir: r.renameDirFiles }];
  }
  return r.sizes.map((size) => ({
    size,
    unitBytes: size,
    rels: Array.from({ length: filesFor(size) }, (_, i) => (op === 'hardlink' ? linkPaths(size, i)[0] : filePath(size, i))),
  }));
}

/** One op on one target: a fresh container, every batch, the container gone. */
async function runTargetOp(
  target: TargetSpec,
  op: CopyUpOp,
  host: LayerHost,
  r: Resolved,
  filesFor: (size: number) => number,
  work: string,
  signal: AbortSignal | undefined,
): Promise<{ cells: CopyUpCell[]; containerMs: number }> {
  const method = bytesMethod(target.driver, host.fsType);
  const cells: CopyUpCell[] = [];
  const t0 = process.hrtime.bigint();
  const container = await openContainer(host, target, `c-${op}`, join(work, 'mnt', `${target.name.replace(/\W/g, '-')}-${op}`));
  const containerMs = Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    pausePoint('bench:container-mounted'); // tests: a signal arrives mid-run
    for (const b of batchesFor(op, r, filesFor)) {
      const head = { target: target.name, driver: target.driver, op, size: b.size, files: b.rels.length, ...(b.entriesPerDir ? { entriesPerDir: b.entriesPerDir } : {}) };
      try {
        cells.push({ ...head, ...(await runBatch(target, method, container, op, b.rels, b.size, b.unitBytes, signal)) });
      } catch (err) {
        const e = toTsgraphError(err);
        if (e.code === 'TSG_ABORTED') throw e;
        cells.push({ ...head, ...emptyCell(method), error: `${(err as NodeJS.ErrnoException).code ?? e.code}: ${e.message}` });
      }
    }
  } finally {
    await container.close();
  }
  return { cells, containerMs };
}

/**
 * Runs the copy-up suite and returns its report. Needs root (mounts). Every
 * mount, container, layer and loop device it makes is gone when it returns
 * or throws.
 *
 * @example
 * ```ts
 * import { benchCopyUp } from 'tsgraph';
 * const report = await benchCopyUp({ dir: '/mnt/tmpfs', targets: ['overlay', 'overlay+metacopy'], sizes: [4096, 1 << 20], maxFiles: 50 });
 * for (const c of report.results) console.log(c.target, c.op, c.size, c.first.p50Us, c.copied.p50);
 * ```
 */
export async function benchCopyUp(options: CopyUpOptions = {}): Promise<CopyUpReport> {
  const r = resolveOptions(options);
  const started = Date.now();
  const parent = fs.realpathSync(options.dir ?? tmpdir());
  const work = fs.mkdtempSync(join(parent, 'copy-up-'));
  const filesFor = (size: number) => Math.max(1, Math.min(r.maxFiles, Math.floor(r.byteBudget / size)));
  const fileOps = r.ops.filter((op) => op !== 'rename-dir' && op !== 'hardlink');
  const plan: LayerPlan = {
    sizes: fileOps.length || r.ops.includes('hardlink') ? r.sizes.map((size) => ({ size, files: filesFor(size) })) : [],
    regular: fileOps.length > 0,
    hardlinks: r.ops.includes('hardlink'),
    renameDirs: r.ops.includes('rename-dir') ? r.renameDirs : 0,
    renameDirFiles: r.renameDirFiles,
    renameFileSize: r.renameFileSize,
  };
  const report: CopyUpReport = {
    kind: 'tsgraph-bench-copy-up',
    version: 1,
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    host: { kernel: release(), cpus: cpus().length, node: process.version, workDir: parent, workFs: backingFs(parent) },
    settings: {
      sizes: r.sizes,
      ops: r.ops,
      maxFiles: r.maxFiles,
      byteBudget: r.byteBudget,
      filesPerSize: Object.fromEntries(r.sizes.map((s) => [String(s), filesFor(s)])),
      renameDirs: r.renameDirs,
      renameDirFiles: r.renameDirFiles,
      renameFileSize: r.renameFileSize,
    },
    targets: [],
    results: [],
  };
  try {
    // One image layer per driver, shared by that driver's targets, taken down before the next driver's is made.
    const drivers = [...new Set(r.targets.map((t) => t.driver))];
    for (const driverName of drivers) {
      throwIfAborted(options.signal);
      const targets = r.targets.filter((t) => t.driver === driverName);
      options.onProgress?.({ target: driverName, step: `image layer (${planBytes(plan)} bytes)` });
      let host: (LayerHost & { layerMs: number }) | undefined;
      try {
        host = await openLayerHost(driverName, work, planBytes(plan), () => syntheticLayerTar(plan), options.signal);
      } catch (err) {
        const e = toTsgraphError(err);
        if (e.code === 'TSG_ABORTED') throw e;
        for (const t of targets) report.targets.push({ name: t.name, driver: t.driver, mountOptions: t.mountOptions, skipped: e.message });
        continue;
      }
      try {
        const runs = targets.map((t) => ({
          t,
          info: { name: t.name, driver: t.driver, mountOptions: t.mountOptions, fsType: host!.fsType, layerMs: Math.round(host!.layerMs) } as CopyUpTargetInfo,
          cells: [] as CopyUpCell[],
          containerMs: [] as number[],
        }));
        report.targets.push(...runs.map((x) => x.info));
        // Op by op, the targets of one driver in turn: drift on a busy machine hits them alike.
        for (const op of r.ops) {
          for (const run of runs) {
            if (run.info.skipped) continue;
            // Two check phases have a poll phase between them: a pending signal's handler runs (and aborts) before the next op starts.
            for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
            throwIfAborted(options.signal);
            options.onProgress?.({ target: run.t.name, step: op });
            try {
              const { cells, containerMs } = await runTargetOp(run.t, op, host, r, filesFor, work, options.signal);
              run.cells.push(...cells);
              run.containerMs.push(containerMs);
            } catch (err) {
              const e = toTsgraphError(err);
              if (e.code === 'TSG_ABORTED') throw e;
              // E.g. the kernel refuses an overlay option: the other targets still run.
              run.info.skipped = e.message;
            }
          }
        }
        for (const run of runs) {
          if (run.info.skipped) continue;
          report.results.push(...run.cells);
          run.info.containerMs = Math.round(median(run.containerMs) * 100) / 100;
        }
      } finally {
        await host.close();
      }
    }
  } finally {
    try {
      unmountBelow(work);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  report.durationMs = Date.now() - started;
  return report;
}
