/**
 * `tsgraph bench copy-up`: the copy-up suite (src/bench/copy-up.ts) —
 * first-write latency and bytes copied per target × operation × file size.
 * The bench modules load only when the verb runs (fast CLI start).
 */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { CopyUpOp, CopyUpReport } from '../../bench/copy-up.js';
import type { CommandContext } from '../context.js';
import { type GlobalOptions, formatTable, printJson, writeErr, writeOut } from '../output.js';

const OPS = 'write, append, truncate, chmod, open-rdwr, rename-dir, hardlink';
const TARGETS = 'overlay, overlay+redirect, overlay+metacopy, vfs, btrfs';

interface Flags {
  targets?: string;
  drivers?: string;
  sizes?: string;
  size?: string;
  ops?: string;
  files: string;
  budget: string;
  renameDirs: string;
  renameFiles: string;
  renameSize: string;
  dir?: string;
  chart?: string;
  quiet?: boolean;
  from?: string;
}

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function integer(name: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError('TSG_USAGE', `${name} takes a whole number (got ${JSON.stringify(text)})`);
  return Number(text);
}

async function printTable(report: CopyUpReport): Promise<void> {
  const { OP_DESCRIPTIONS } = await import('../../bench/ops.js');
  const { formatSize, formatUs } = await import('../../bench/stats.js');
  const h = report.host;
  writeOut(`copy-up: first write (cold: copy-up) vs second write (warm), Linux ${h.kernel}, ${h.cpus} CPUs, work dir on ${h.workFs}\n`);
  for (const t of report.targets) {
    if (t.skipped) writeOut(`  ${t.name}: skipped: ${t.skipped}\n`);
    else writeOut(`  ${t.name}${t.mountOptions ? ` (${t.mountOptions.join(',')})` : ''} on ${t.fsType}: image layer ${t.layerMs} ms, container create+mount ${t.containerMs} ms\n`);
  }
  for (const op of report.settings.ops) {
    const cells = report.results.filter((c) => c.op === op);
    if (!cells.length) continue;
    const unit = op === 'rename-dir' ? 'DIR' : 'FILE';
    writeOut(`\n${op}: ${OP_DESCRIPTIONS[op]}\n`);
    writeOut(
      formatTable(
        ['TARGET', 'SIZE', op === 'rename-dir' ? 'DIRS' : 'FILES', 'FIRST p50', 'p99', 'max', 'SECOND p50', 'FIRST/SECOND', `COPIED/${unit}`, 'COPIED/SIZE', 'NOTE'],
        cells.map((c) => [
          c.target,
          op === 'rename-dir' ? `${c.entriesPerDir}×${formatSize(c.size)}` : formatSize(c.size),
          String(c.files),
          ...(c.error ? ['-', '-', '-', '-', '-', '-', '-', c.error] : [
            formatUs(c.first.p50Us),
            formatUs(c.first.p99Us),
            formatUs(c.first.maxUs),
            formatUs(c.second.p50Us),
            `${c.ratio}x`,
            formatSize(c.copied.p50),
            c.copied.ratio.toFixed(2),
            c.note ? (c.op === 'rename-dir' ? 'EXDEV: copied like mv' : 'link split') : '',
          ]),
        ]),
      ),
    );
  }
  writeOut(`\nbytes copied: overlay = allocated bytes of the upper's copy; vfs = growth of the file in the container's full copy; btrfs = bytes no longer shared with the image (btrfs filesystem du)\n`);
}

async function output(report: CopyUpReport, flags: Flags, g: GlobalOptions): Promise<void> {
  if (flags.chart) {
    const { copyUpHtml, copyUpSvg } = await import('../../bench/chart.js');
    fs.writeFileSync(flags.chart, /\.html?$/i.test(flags.chart) ? copyUpHtml(report) : copyUpSvg(report));
  }
  if (g.json) printJson(report);
  else await printTable(report);
}

export function benchCommand(ctx?: CommandContext): Command {
  const bench = new Command('bench').summary('benchmarks (copy-up)').description('Benchmarks that print ratios between drivers measured side by side.');
  bench.addCommand(
    new Command('copy-up')
      .summary('copy-up suite: first-write latency and bytes copied per target, operation and file size')
      .description(
        'Makes one image layer per driver (for each file size, FILES fresh files and as many hardlinked pairs, plus ' +
          'directories of small files), then for each target and operation a fresh container on it, and times the ' +
          'operation on every file twice: first (the file as the image has it: overlay copies it up, btrfs breaks ' +
          'extent sharing) and second (already copied). Reports p50/p99/max latency, and the bytes the first run left ' +
          'in the container layer. Needs root. Use a tmpfs or a fresh filesystem for --dir; btrfs runs on a loop ' +
          'btrfs the bench makes (and removes) unless --dir is on btrfs.',
      )
      .option('--targets <list>', `comma-separated targets (default: all of ${TARGETS}); overlay = tsgraph's own options (redirect_dir=off,metacopy=off)`)
      .option('--drivers <list>', 'same as --targets (kept for older scripts)')
      .option('--sizes <list>', 'comma-separated file sizes, bytes or 4K/1M/1G (default 4K,64K,1M,16M,256M,1G)')
      .option('--size <list>', 'same as --sizes (kept for older scripts)')
      .option('--ops <list>', `comma-separated operations (default: all of ${OPS})`)
      .option('--files <n>', 'most files timed per size and operation', '200')
      .option('--budget <size>', 'bytes per size and operation: files = min(FILES, BUDGET / size), at least 1', '64M')
      .option('--rename-dirs <n>', 'rename-dir: directories renamed', '10')
      .option('--rename-files <n>', 'rename-dir: files in each directory', '200')
      .option('--rename-size <size>', 'rename-dir: bytes per file', '4K')
      .option('--dir <dir>', 'where the run makes its work dir copy-up-XXXXXX, removed after; made if missing (default: the OS temp dir)')
      .option('--chart <file>', 'also write a chart: HTML (tables too) when FILE ends in .html, else SVG')
      .option('-q, --quiet', 'no progress lines on stderr')
      .option('--from <file>', 'run nothing: print (and --chart) a report saved earlier with --json')
      .configureHelp({ showGlobalOptions: true })
      .addHelpText(
        'after',
        [
          '',
          'Operations: write (pwrite 1 byte), append (1 byte, O_APPEND), truncate (to size-1), chmod,',
          '  open-rdwr (open O_RDWR, nothing written), rename-dir (a dir of many files; EXDEV is timed',
          '  as mv does it: copy + delete), hardlink (write 1 byte to one name of a hardlinked pair).',
          'Targets: overlay (index=off,redirect_dir=off,metacopy=off: how tsgraph mounts containers),',
          '  overlay+redirect (redirect_dir=on), overlay+metacopy (metacopy=on,redirect_dir=on), vfs, btrfs.',
          '--json prints the report (kind "tsgraph-bench-copy-up"); library: benchCopyUp(options) from "tsgraph".',
          'More: docs/copy-up-bench.md.',
        ].join('\n'),
      )
      .action(async (flags: Flags, cmd: Command) => {
        const g = cmd.optsWithGlobals<GlobalOptions>();
        const { parseSize } = await import('../../bench/stats.js');
        const sizes = flags.sizes ?? flags.size;
        const targets = flags.targets ?? flags.drivers;
        const options = {
          dir: flags.dir,
          targets: targets ? list(targets) : undefined,
          sizes: sizes ? list(sizes).map(parseSize) : undefined,
          ops: flags.ops ? (list(flags.ops) as CopyUpOp[]) : undefined,
          maxFiles: integer('--files', flags.files),
          byteBudget: parseSize(flags.budget),
          renameDirs: integer('--rename-dirs', flags.renameDirs),
          renameDirFiles: integer('--rename-files', flags.renameFiles),
          renameFileSize: parseSize(flags.renameSize),
        };
        if (flags.dir) fs.mkdirSync(flags.dir, { recursive: true });
        if (flags.from) {
          const saved = JSON.parse(fs.readFileSync(flags.from, 'utf8')) as CopyUpReport;
          if (saved?.kind !== 'tsgraph-bench-copy-up') throw new UsageError('TSG_USAGE', `${flags.from} is not a saved copy-up report (tsgraph bench copy-up --json)`);
          return output(saved, flags, g);
        }
        // A signal stops the run between files; the suite then unmounts and deletes what it made.
        const controller = new AbortController();
        const onSignal = () => controller.abort(new Error('interrupted'));
        ctx?.signal.addEventListener('abort', onSignal);
        process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
        try {
          const { benchCopyUp } = await import('../../bench/copy-up.js');
          const report = await benchCopyUp({
            ...options,
            signal: controller.signal,
            onProgress: flags.quiet ? undefined : (e) => writeErr(`bench copy-up: ${e.target}: ${e.step}\n`),
          });
          await output(report, flags, g);
        } finally {
          process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
          ctx?.signal.removeEventListener('abort', onSignal);
        }
      }),
  );
  return bench;
}
