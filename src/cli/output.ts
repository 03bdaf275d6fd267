/**
 * CLI output helpers: JSON for scripts, aligned tables and sizes for humans,
 * and the one error line format: `tsgraph: <message> (<code>)`.
 */
import { EXIT_CODES, type TsgraphError, toTsgraphError } from '../errors.js';

export interface GlobalOptions {
  root?: string;
  driver?: string;
  json?: boolean;
  debug?: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** `1.2 MB` style sizes (decimal units, like docker). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Left-aligned columns separated by three spaces. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Prints an error the way every verb does and returns the exit code. */
export function reportError(err: unknown, opts: GlobalOptions): number {
  const e: TsgraphError = toTsgraphError(err);
  if (opts.json) {
    printJson({ error: e.toJSON() });
  } else {
    process.stderr.write(`tsgraph: ${e.message} (${e.code})\n`);
    if (opts.debug) {
      process.stderr.write(`${e.stack ?? ''}\n`);
      if (e.cause) process.stderr.write(`caused by: ${(e.cause as Error)?.stack ?? String(e.cause)}\n`);
    }
  }
  if (e.code === 'TSG_ABORTED') return 130;
  return EXIT_CODES[e.category] ?? 1;
}
