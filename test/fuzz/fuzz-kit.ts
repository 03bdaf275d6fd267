/**
 * A small, seeded, reproducible fuzzing kit for the test suite: a PRNG
 * (mulberry32), byte/string mutators, and a loop that runs N cases and, on
 * the first unexpected failure, reports the seed and case number so the case
 * can be replayed (`FUZZ_SEED=<seed> FUZZ_CASES=<n>`). Cases are bounded in
 * count; the suite is not coverage-guided, it is a regression net that runs
 * in CI on every change.
 */
import * as fs from 'node:fs';
import { TsgraphError } from '../../src/errors.js';

export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 2^32). */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Values that tend to break parsers of numbers and names. */
export const INTERESTING_STRINGS = [
  '', '0', '-1', '4294967296', '4294967295', '18446744073709551616', 'NaN', '1e309', '0x10', '07777777777',
  ' ', '\0', '..', '.', '/', '//', '../..', '.wh.', '.wh..wh..opq', '\u00ff', '\udc80', '%00', 'a'.repeat(300),
  '"', '\\', '\\"', ',', '=', '\r\n', '\t',
];

/** One random edit of `input`: flip, set, insert, delete, duplicate or splice an interesting value. */
export function mutateBytes(rng: Rng, input: Buffer, maxEdits = 4): Buffer {
  let b = Buffer.from(input);
  const edits = 1 + rng.int(maxEdits);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(7)) {
      case 0:
        if (b.length) b[at % b.length]! ^= 1 << rng.int(8);
        break;
      case 1:
        if (b.length) b[at % b.length] = rng.pick([0, 0xff, 0x7f, 0x80, 0x20, 0x2f, 0x2e, 0x30, 0x37]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(8)), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(16)))]);
        break;
      case 4: {
        const from = rng.int(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + rng.int(32)), b.subarray(at)]);
        break;
      }
      case 5:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(INTERESTING_STRINGS)), b.subarray(at)]);
        break;
      default:
        b = b.subarray(0, at);
    }
  }
  return b;
}

export interface FuzzReport {
  cases: number;
  accepted: number;
  rejected: number;
  codes: Map<string, number>;
}

/** Seed and case count, overridable for replay: FUZZ_SEED, FUZZ_CASES. */
export function fuzzConfig(defaultCases: number, defaultSeed: number): { seed: number; cases: number } {
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : defaultSeed;
  const cases = process.env.FUZZ_CASES ? Number(process.env.FUZZ_CASES) : defaultCases;
  return { seed, cases };
}

/**
 * Runs `cases` cases of `body(rng, i)`. A TsgraphError is an accepted way to
 * refuse input; anything else thrown fails with the case's seed so it can be
 * replayed alone: each case gets its own Rng seeded from (seed, i).
 */
export async function fuzz(
  name: string,
  cfg: { seed: number; cases: number; only?: number },
  body: (rng: Rng, i: number) => unknown | Promise<unknown>,
): Promise<FuzzReport> {
  const report: FuzzReport = { cases: 0, accepted: 0, rejected: 0, codes: new Map() };
  const start = process.env.FUZZ_CASE ? Number(process.env.FUZZ_CASE) : 0;
  const end = process.env.FUZZ_CASE ? start + 1 : cfg.cases;
  for (let i = start; i < end; i++) {
    const rng = new Rng((cfg.seed * 1_000_003 + i) >>> 0);
    report.cases++;
    if (process.env.FUZZ_TRACE) fs.writeFileSync(process.env.FUZZ_TRACE, `${name} ${i}\n`);
    try {
      await body(rng, i);
      report.accepted++;
    } catch (err) {
      if (err instanceof TsgraphError) {
        report.rejected++;
        report.codes.set(err.code, (report.codes.get(err.code) ?? 0) + 1);
        continue;
      }
      const e = err as Error;
      if (process.env.FUZZ_KEEP_GOING) {
        // Exploration mode: list each distinct failure once, keep going.
        const key = `${e.name}: ${(e.message ?? '').replace(/'[^']*'|"[^"]*"|\d+/g, '…')}`;
        if (!report.codes.has(key)) console.error(`FUZZ ${name} case ${i}: ${e.message}`);
        report.codes.set(key, (report.codes.get(key) ?? 0) + 1);
        continue;
      }
      const replay = `FUZZ_SEED=${cfg.seed} FUZZ_CASE=${i}`;
      e.message = `${name}: case ${i} threw a non-TsgraphError (${e.name}: ${e.message}); replay with ${replay}`;
      throw e;
    }
  }
  return report;
}
