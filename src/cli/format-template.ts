/**
 * `--format` / `inspect -f`: the part of Go's text/template docker users
 * type. Text with `{{ actions }}`; an action is a field path (`.`,
 * `.Config.Env`), or a function applied to arguments: `json X`,
 * `index X "key" 0`, `join X ","`, `len X`, `upper X`, `lower X`, `title X`;
 * arguments are paths, "quoted strings", integers or `( … )`. `{{-` and `-}}`
 * trim spaces as in Go. A leading `table ` (images, ps, history) prints a
 * header and aligns the tab-separated columns. Literal `\t` and `\n` typed
 * in the format are a tab and a newline (as docker's formatter).
 *
 * Values print as Go prints them: strings raw, lists `[a b]`, objects
 * `map[k:v]` (keys sorted), null `<nil>`, an absent `index` key `<no value>`.
 * An unknown field, a malformed template or range/if/with (not supported)
 * is a TSG_USAGE error: a typo must not print an empty column and exit 0.
 */
import { UsageError } from '../errors.js';

type Arg = { kind: 'path'; path: string[] } | { kind: 'string'; value: string } | { kind: 'number'; value: number } | { kind: 'call'; call: Call };
interface Call {
  fn: string | undefined; // undefined: the single argument's value
  args: Arg[];
}
type Part = { kind: 'text'; text: string } | { kind: 'action'; call: Call };

const FUNCTIONS = new Set(['json', 'index', 'join', 'len', 'upper', 'lower', 'title']);
const UNSUPPORTED = new Set(['range', 'if', 'with', 'else', 'end', 'define', 'template', 'block', 'printf', 'print', 'println']);

function usage(message: string, format: string): UsageError {
  return new UsageError('TSG_USAGE', `format: ${message}`, { data: { format } });
}

/** A parsed template. */
export class Template {
  constructor(
    readonly source: string,
    readonly table: boolean,
    readonly parts: Part[],
  ) {}

  /** Top-level field names the template reads (`.Repository` → Repository), to check against a verb's fields. */
  fields(): string[] {
    const out: string[] = [];
    const walk = (a: Arg) => {
      if (a.kind === 'path' && a.path.length) out.push(a.path[0]!);
      if (a.kind === 'call') a.call.args.forEach(walk);
    };
    for (const p of this.parts) if (p.kind === 'action') p.call.args.forEach(walk);
    return out;
  }

  /** Throws TSG_USAGE unless every top-level field is one of `known`. */
  checkFields(known: readonly string[]): this {
    for (const f of this.fields()) {
      if (!known.includes(f)) throw usage(`unknown field .${f} (fields: ${known.map((k) => `.${k}`).join(' ')})`, this.source);
    }
    return this;
  }

  /** The template applied to `data`; `escape` is applied to every value printed (not to the format's own text). */
  render(data: unknown, escape: (s: string) => string = (s) => s): string {
    let out = '';
    for (const p of this.parts) out += p.kind === 'text' ? p.text : escape(show(evalCall(p.call, data, this.source)));
    return out;
  }

  /**
   * The header line of a `table` format: each top-level field printed as its
   * label (`labels[field]`, else the field name in capitals).
   */
  header(labels: Record<string, string>): string {
    let out = '';
    for (const p of this.parts) {
      if (p.kind === 'text') out += p.text;
      else {
        const f = p.call.fn === undefined && p.call.args[0]?.kind === 'path' ? p.call.args[0].path : undefined;
        out += f && f.length ? f.map((x) => labels[x] ?? x.toUpperCase()).join(' ') : '';
      }
    }
    return out;
  }
}

/** Parses `source` (with an optional `table ` prefix); TSG_USAGE when malformed. */
export function parseTemplate(source: string): Template {
  let text = source;
  let table = false;
  if (text === 'table' || text.startsWith('table ')) {
    table = true;
    text = text.slice(5).replace(/^ /, '');
  }
  const parts: Part[] = [];
  let i = 0;
  for (let n = 0; i < text.length && n <= text.length; n++) {
    const open = text.indexOf('{{', i);
    if (open < 0) break;
    let literal = text.slice(i, open);
    const close = text.indexOf('}}', open + 2);
    if (close < 0) throw usage('unclosed action (no }})', source);
    let inner = text.slice(open + 2, close);
    if (inner.startsWith('-') && /^-\s/.test(inner)) {
      literal = literal.replace(/\s+$/, '');
      inner = inner.slice(1);
    }
    let trimAfter = false;
    if (/\s-$/.test(inner)) {
      inner = inner.slice(0, -1);
      trimAfter = true;
    }
    if (literal) parts.push({ kind: 'text', text: unescapeText(literal) });
    parts.push({ kind: 'action', call: parseAction(inner.trim(), source) });
    i = close + 2;
    if (trimAfter) while (i < text.length && /\s/.test(text[i]!)) i++;
  }
  if (i < text.length) parts.push({ kind: 'text', text: unescapeText(text.slice(i)) });
  return new Template(source, table, parts);
}

function unescapeText(s: string): string {
  return s.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
}

// --- parsing one action -----------------------------------------------------------------------

function tokenize(s: string, source: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      out.push(c);
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      if (j >= s.length) throw usage('unterminated string', source);
      out.push(s.slice(i, j + 1));
      i = j + 1;
    } else if (c === '`') {
      const j = s.indexOf('`', i + 1);
      if (j < 0) throw usage('unterminated raw string', source);
      out.push(JSON.stringify(s.slice(i + 1, j)));
      i = j + 1;
    } else {
      let j = i;
      while (j < s.length && !/[\s()"]/.test(s[j]!)) j++;
      out.push(s.slice(i, j));
      i = j;
    }
  }
  return out;
}

function parseAction(inner: string, source: string): Call {
  if (!inner) throw usage('empty action {{}}', source);
  if (inner.startsWith('/*')) return { fn: undefined, args: [{ kind: 'string', value: '' }] }; // a comment
  const tokens = tokenize(inner, source);
  let pos = 0;
  const call = parseCall(() => tokens[pos], () => tokens[pos++], source, false);
  if (pos < tokens.length) throw usage(`unexpected "${tokens[pos]}" in {{${inner}}}`, source);
  return call;
}

function parseCall(peek: () => string | undefined, next: () => string | undefined, source: string, nested: boolean): Call {
  const first = peek();
  if (first === undefined) throw usage('missing value', source);
  if (UNSUPPORTED.has(first)) throw usage(`{{${first}}} is not supported (fields, index, json, join, len, upper, lower, title)`, source);
  if (first === '|') throw usage('pipelines (|) are not supported', source);
  let fn: string | undefined;
  if (FUNCTIONS.has(first)) {
    fn = first;
    next();
  }
  const args: Arg[] = [];
  for (let t = peek(); t !== undefined && t !== ')'; t = peek()) {
    if (t === '|') throw usage('pipelines (|) are not supported', source);
    next();
    if (t === '(') {
      args.push({ kind: 'call', call: parseCall(peek, next, source, true) });
      if (next() !== ')') throw usage('unclosed (', source);
    } else if (t.startsWith('"')) {
      try {
        args.push({ kind: 'string', value: JSON.parse(t) as string });
      } catch {
        throw usage(`bad string ${t}`, source);
      }
    } else if (/^-?\d+$/.test(t)) {
      args.push({ kind: 'number', value: Number(t) });
    } else if (t === '.') {
      args.push({ kind: 'path', path: [] });
    } else if (/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(t)) {
      args.push({ kind: 'path', path: t.slice(1).split('.') });
    } else if (t.startsWith('$')) {
      throw usage('variables ($) are not supported', source);
    } else {
      throw usage(`function "${t}" not defined`, source);
    }
  }
  if (!nested && peek() === ')') throw usage('unexpected )', source);
  const want = fn === undefined ? [1, 1] : fn === 'index' ? [1, Infinity] : fn === 'join' ? [2, 2] : [1, 1];
  if (args.length < want[0]! || args.length > want[1]!) {
    throw usage(fn ? `wrong number of arguments for ${fn}: ${args.length}` : args.length ? 'a value cannot take arguments' : 'missing value', source);
  }
  return { fn, args };
}

// --- evaluating -----------------------------------------------------------------------------

const NO_VALUE = Symbol('no value');

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function evalArg(a: Arg, data: unknown, source: string): unknown {
  if (a.kind === 'string' || a.kind === 'number') return a.value;
  if (a.kind === 'call') return evalCall(a.call, data, source);
  let v = data;
  for (let k = 0; k < a.path.length; k++) {
    const name = a.path[k]!;
    const where = `.${a.path.slice(0, k + 1).join('.')}`;
    if (!isMap(v) || !Object.hasOwn(v, name)) {
      const known = isMap(v) ? ` (fields here: ${Object.keys(v).map((x) => `.${x}`).join(' ') || 'none'})` : v === null || v === undefined ? ' (the value is empty)' : ' (not an object)';
      throw usage(`unknown field ${where}${known}`, source);
    }
    v = v[name];
  }
  return v;
}

function evalCall(c: Call, data: unknown, source: string): unknown {
  const args = c.args.map((a) => evalArg(a, data, source));
  switch (c.fn) {
    case undefined:
      return args[0];
    case 'json':
      return { [RAW]: jsonCompact(args[0]) };
    case 'index': {
      let v = args[0];
      for (const key of args.slice(1)) {
        if (Array.isArray(v) && typeof key === 'number') {
          if (key < 0 || key >= v.length) throw usage(`index ${key} out of range (length ${v.length})`, source);
          v = v[key];
        } else if (isMap(v) && typeof key === 'string') {
          v = Object.hasOwn(v, key) ? v[key] : NO_VALUE;
        } else if ((v === null || v === undefined || v === NO_VALUE) && typeof key === 'string') {
          v = NO_VALUE; // index of an absent map: Go gives the zero value
        } else {
          throw usage(`cannot index ${describe(v)} with ${JSON.stringify(key)}`, source);
        }
      }
      return v;
    }
    case 'join': {
      const [list, sep] = args;
      if (!Array.isArray(list) || typeof sep !== 'string') throw usage('join takes a list and a string', source);
      return list.map(show).join(sep);
    }
    case 'len': {
      const v = args[0];
      if (Array.isArray(v) || typeof v === 'string') return v.length;
      if (isMap(v)) return Object.keys(v).length;
      throw usage(`len of ${describe(v)}`, source);
    }
    case 'upper':
      return show(args[0]).toUpperCase();
    case 'lower':
      return show(args[0]).toLowerCase();
    case 'title':
      return show(args[0]).replace(/\b\w/g, (m) => m.toUpperCase());
    default:
      throw usage(`function "${c.fn}" not defined`, source);
  }
}

function describe(v: unknown): string {
  return v === null || v === undefined || v === NO_VALUE ? 'nothing' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a map' : `a ${typeof v}`;
}

const RAW = Symbol('raw text');
// As output.ts's jsonText: JSON.stringify leaves DEL, C1 and bidi characters raw.
const UNSAFE_JSON = /[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

function jsonCompact(v: unknown): string {
  const text = JSON.stringify(v === NO_VALUE ? null : v) ?? 'null';
  return text.replace(UNSAFE_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A value as Go's fmt prints it with %v. */
export function show(v: unknown): string {
  if (isMap(v) && RAW in v) return (v as Record<symbol, string>)[RAW]!;
  if (v === NO_VALUE) return '<no value>';
  if (v === null || v === undefined) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (isMap(v)) return `map[${Object.keys(v).sort().map((k) => `${k}:${show(v[k])}`).join(' ')}]`;
  return String(v);
}

/**
 * Rows rendered with a format: `table` formats are aligned under a header
 * (cells split at the tabs the format has); others are one line per row.
 * Values are escaped with `escape` (a value's own tabs and newlines stay
 * inside its cell).
 */
export function renderRows(t: Template, rows: unknown[], labels: Record<string, string>, escape: (s: string) => string, table: (header: string[], rows: string[][]) => string): string {
  const lines = rows.map((r) => t.render(r, escape));
  if (!t.table) return lines.map((l) => `${l}\n`).join('');
  return table(t.header(labels).split('\t'), lines.map((l) => l.split('\t')));
}

/** docker's units.HumanDuration: "3 weeks", "About an hour", "Less than a second". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** "3 weeks ago" for an RFC 3339 time; "N/A" when absent or unparsable. */
export function createdSince(created: string | undefined, now = Date.now()): string {
  const t = created ? Date.parse(created) : NaN;
  return Number.isNaN(t) ? 'N/A' : `${humanDuration(Math.max(0, now - t))} ago`;
}

/** docker's CreatedAt: "2024-01-01 00:00:00 +0000 UTC" (in UTC); "" when absent. */
export function createdAt(created: string | undefined): string {
  const t = created ? Date.parse(created) : NaN;
  return Number.isNaN(t) ? '' : `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} +0000 UTC`;
}

/**
 * Go's path.Match, which docker's `reference=` filter uses: `*` any run of
 * characters but `/`, `?` one such character, `[a-z]` / `[^a-z]` classes,
 * `\` escapes. A malformed pattern is TSG_USAGE.
 */
export function globMatcher(pattern: string): (s: string) => boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      if (i + 1 >= pattern.length) throw badPattern(pattern, '(ends with \\)');
      re += escapeRe(pattern[++i]!);
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw badPattern(pattern, '(unclosed [)');
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith('^');
      if (negate) body = body.slice(1);
      if (!body) throw badPattern(pattern, '(empty [])');
      re += `[${negate ? '^/' : ''}${body.replace(/[\]\\]/g, (m) => `\\${m}`)}]`;
      i = end;
    } else re += escapeRe(c);
  }
  let compiled: RegExp;
  try {
    compiled = new RegExp(`^${re}$`, 's');
  } catch {
    throw badPattern(pattern);
  }
  return (s) => compiled.test(s);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

function badPattern(pattern: string, why?: string): UsageError {
  return new UsageError('TSG_USAGE', `bad pattern ${pattern}${why ? ` ${why}` : ''}`, { data: { pattern } });
}

/** `registry/repo:tag` → [repo, tag]; a name by digest has tag `<none>`. */
export function splitName(name: string): { repository: string; tag: string } {
  const at = name.lastIndexOf('@');
  const colon = name.lastIndexOf(':');
  const split = at > 0 ? at : colon > name.lastIndexOf('/') ? colon : name.length;
  return { repository: name.slice(0, split), tag: at > 0 ? '<none>' : name.slice(split + 1) || '<none>' };
}
