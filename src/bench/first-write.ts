/**
 * The library hook for copy-up benchmarks: time the first write to files of
 * a mounted container (which makes overlay copy the file up from a lower
 * layer, and btrfs break CoW sharing) against a second write to the same
 * files (no copy-up any more). Writes append one byte through O_APPEND.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';

/** How long the first write to one file took (the copy-up). */
export interface WriteTiming {
  path: string;
  /** First write, microseconds. */
  firstUs: number;
  /** Second write to the same file, microseconds. */
  secondUs: number;
}

function appendOnce(path: string): number {
  const t = process.hrtime.bigint();
  const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND);
  fs.writeSync(fd, 'x');
  fs.closeSync(fd);
  return Number(process.hrtime.bigint() - t) / 1000;
}

/** Times first and second writes to `paths` (relative to `root`), in order. */
export function timeFirstWrites(root: string, paths: string[]): WriteTiming[] {
  const out: WriteTiming[] = [];
  for (const p of paths) {
    const abs = join(root, p);
    const firstUs = appendOnce(abs);
    const secondUs = appendOnce(abs);
    out.push({ path: p, firstUs, secondUs });
  }
  return out;
}

/** A summary of timings (see summarize). */
export interface TimingSummary {
  count: number;
  medianUs: number;
  p95Us: number;
  totalMs: number;
}

/** Count, median, 95th percentile and total of microsecond timings. */
export function summarize(us: number[]): TimingSummary {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { count: s.length, medianUs: at(0.5), p95Us: at(0.95), totalMs: s.reduce((a, b) => a + b, 0) / 1000 };
}
