/**
 * Small pieces the copy-up suite shares: latency percentiles, and sizes as
 * people write them (`4K`, `1M`, `1G`: binary units, like `truncate -s`).
 */
import { UsageError } from '../errors.js';

/** Latency percentiles of one cell of the matrix, in microseconds. */
export interface LatencyStats {
  /** Samples (files timed). */
  count: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
}

/** Nearest-rank percentile of an ascending array (`q` in 0..1). */
function rank(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function latencyStats(us: number[]): LatencyStats {
  const s = [...us].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    count: s.length,
    p50Us: round(rank(s, 0.5)),
    p99Us: round(rank(s, 0.99)),
    maxUs: round(s[s.length - 1] ?? 0),
    meanUs: round(s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0),
  };
}

/** The median of plain numbers (bytes copied per file). */
export function median(values: number[]): number {
  return rank([...values].sort((a, b) => a - b), 0.5);
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

/** `4096`, `4K`, `64KiB`, `1M`, `1G` → bytes (binary units). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError('TSG_USAGE', `not a size: ${JSON.stringify(text)} (use bytes or 4K, 1M, 1G)`);
  return Math.round(Number(m[1]) * unit);
}

/** Bytes → `4K`, `1.5M`, `1G` (binary), the inverse of parseSize for round sizes. */
export function formatSize(n: number): string {
  for (const [unit, mult] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const) {
    if (n >= mult) {
      const v = n / mult;
      return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
    }
  }
  return `${n}B`;
}

/** Microseconds for people: `12 µs`, `3.4 ms`, `1.20 s`. */
export function formatUs(us: number): string {
  if (us < 1000) return `${us < 10 ? us.toFixed(1) : Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}
