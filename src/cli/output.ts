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

/*
 * Image configs, labels, annotations, tags and registry error bodies are
 * written by image authors and registries: printed raw, an ESC or CSI (0x9b)
 * in them drives the user's terminal (retitle windows, hide text, fake
 * prompts). Human output shows them escaped; JSON escapes them as \uXXXX,
 * which keeps the value exact for scripts.
 *
 * Escaped: C0 controls (except newline in free text), DEL, C1 controls, and
 * the invisible format characters that reorder or hide text (bidi overrides
 * and isolates, zero-width marks, BOM, line/paragraph separators).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_CELL = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
const UNSAFE_JSON = /[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

function escapeChar(c: string): string {
  const n = c.charCodeAt(0);
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** Text for a terminal: control and bidi characters shown as `\xNN` / `\uNNNN`; newlines kept. */
export function safeText(s: string): string {
  return s.replace(UNSAFE_TEXT, escapeChar);
}

/** One table cell or one-line value: like safeText, newlines escaped too. */
export function safeCell(s: string): string {
  return s.replace(UNSAFE_CELL, escapeChar);
}

/** Writes human text to stdout with untrusted characters escaped. */
export function writeOut(text: string): void {
  process.stdout.write(safeText(text));
}

/** Writes human text to stderr with untrusted characters escaped. */
export function writeErr(text: string): void {
  process.stderr.write(safeText(text));
}

/** JSON.stringify leaves DEL, C1 and bidi characters raw; escaping them keeps the value and the terminal. */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  return text.replace(UNSAFE_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function printJson(value: unknown): void {
  process.stdout.write(jsonText(value) + '\n');
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
  rows = rows.map((r) => r.map(safeCell));
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
    // Messages can quote registry bodies and image content.
    writeErr(`tsgraph: ${safeCell(e.message)} (${e.code})\n`);
    if (opts.debug) {
      writeErr(`${e.stack ?? ''}\n`);
      if (e.cause) writeErr(`caused by: ${(e.cause as Error)?.stack ?? String(e.cause)}\n`);
    }
  }
  return EXIT_CODES[e.category] ?? 1;
}
