/** `tsgraph bench copy-up`: first-write (copy-up) cost per driver, side by side. */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { benchCopyUp } from '../../bench/copy-up.js';
import { UsageError } from '../../errors.js';
import { type GlobalOptions, formatTable, printJson, writeOut } from '../output.js';

export function benchCommand(): Command {
  const bench = new Command('bench').summary('benchmarks (copy-up)').description('Benchmarks that print ratios between drivers measured side by side.');
  bench.addCommand(
    new Command('copy-up')
      .summary('time first writes (copy-up) against second writes, per driver')
      .description(
        'Build a synthetic one-layer image (FILES files of SIZE bytes), and for each driver pull it into a fresh root under ' +
          'DIR, mount a container, and time the first and the second one-byte append to every file. Prints medians, p95 and ' +
          'first/second ratios. Use a tmpfs or a fresh filesystem for DIR (btrfs needs DIR on btrfs).',
      )
      .option('--drivers <list>', 'comma-separated drivers', 'overlay,vfs')
      .option('--files <n>', 'files in the image', '2000')
      .option('--size <bytes>', 'bytes per file', '65536')
      .option('--dir <dir>', 'work dir (default: a temp dir, removed after)')
      .action(async (flags: { drivers: string; files: string; size: string; dir?: string }, cmd: Command) => {
        const g = cmd.optsWithGlobals<GlobalOptions>();
        const files = Number(flags.files);
        const size = Number(flags.size);
        if (!(files > 0 && files <= 1e6 && size >= 0 && size <= 1 << 30)) throw new UsageError('TSG_USAGE', '--files 1..1000000 and --size 0..1GiB');
        const dir = flags.dir ?? fs.mkdtempSync(join(tmpdir(), 'tsgraph-bench-'));
        try {
          const results = await benchCopyUp({ dir, drivers: flags.drivers.split(',').map((d) => d.trim()), files, fileSize: size });
          if (g.json) return printJson({ files, size, results });
          const us = (n: number) => `${n.toFixed(0)} µs`;
          writeOut(`copy-up: ${files} files of ${size} bytes, first vs second one-byte append\n`);
          writeOut(
            formatTable(
              ['DRIVER', 'FIRST median', 'FIRST p95', 'SECOND median', 'FIRST/SECOND', 'FIRST total'],
              results.map((r) => [r.driver, us(r.first.medianUs), us(r.first.p95Us), us(r.second.medianUs), `${(r.first.medianUs / Math.max(r.second.medianUs, 0.001)).toFixed(1)}x`, `${r.first.totalMs.toFixed(0)} ms`]),
            ),
          );
        } finally {
          if (!flags.dir) fs.rmSync(dir, { recursive: true, force: true });
        }
      }),
  );
  return bench;
}
