/**
 * `--change` instructions for commit, as docker commit takes them:
 * CMD, ENTRYPOINT (JSON or shell form), ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME.
 */
import { UsageError } from '../errors.js';

export interface RunConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  [key: string]: unknown;
}

function bad(change: string, why: string): UsageError {
  return new UsageError('TSG_USAGE', `--change ${JSON.stringify(change)}: ${why}`);
}

/** The JSON form `["a", "b"]`: an array of strings, or TSG_USAGE. */
function jsonStrings(change: string, t: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    throw bad(change, 'not a JSON array');
  }
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw bad(change, 'want a JSON array of strings');
  return parsed as string[];
}

function argv(change: string, rest: string): string[] {
  const t = rest.trim();
  return t.startsWith('[') ? jsonStrings(change, t) : ['/bin/sh', '-c', t];
}

/**
 * Splits on unquoted whitespace, keeping quotes (Dockerfile's first pass):
 * `a="b c" "d e"=f` → [`a="b c"`, `"d e"=f`].
 */
function rawWords(change: string, t: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | undefined;
  for (let i = 0; i < t.length; i++) {
    const c = t[i]!;
    if (quote) {
      cur += c;
      if (c === '\\' && quote === '"' && i + 1 < t.length) cur += t[++i];
      else if (c === quote) quote = undefined;
    } else if (/\s/.test(c)) {
      if (cur) out.push(cur);
      cur = '';
    } else {
      cur += c;
      if (c === '\\' && i + 1 < t.length) cur += t[++i];
      else if (c === '"' || c === "'") quote = c;
    }
  }
  if (quote) throw bad(change, `unterminated ${quote} quote`);
  if (cur) out.push(cur);
  return out;
}

/** Removes one word's quotes and escapes: `"c d"` → `c d`, `'x'` → `x`, `a\ b` → `a b`. */
function unquote(w: string): string {
  let out = '';
  let quote: string | undefined;
  for (let i = 0; i < w.length; i++) {
    const c = w[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else out += c;
    } else if (c === '\\' && i + 1 < w.length) out += w[++i];
    else if (quote === '"' && c === '"') quote = undefined;
    else if (!quote && (c === '"' || c === "'")) quote = c;
    else out += c;
  }
  return out;
}

/**
 * `K=V K2="v 2" "k 3"=v` or the old `K V` form, as docker parses LABEL and
 * ENV: each word splits at its first `=`, then quotes are removed from both sides.
 */
function pairs(change: string, rest: string): Array<[string, string]> {
  const words = rawWords(change, rest.trim());
  if (!words.length) throw bad(change, 'want KEY=VALUE');
  if (!words[0]!.includes('=')) {
    // The old form: the first word is the key, the rest of the line its value.
    const t = rest.trim();
    const sp = t.search(/\s/);
    if (sp < 0) throw bad(change, 'want KEY=VALUE');
    return [[unquote(words[0]!), t.slice(sp).trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) throw bad(change, `${JSON.stringify(w)} is not KEY=VALUE`);
    const key = unquote(w.slice(0, eq));
    if (!key) throw bad(change, 'a name cannot be empty');
    return [key, unquote(w.slice(eq + 1))];
  });
}

/** `80`, `80/udp`, `8000-8010/tcp` → the keys docker writes (`80/tcp`...), or TSG_USAGE. */
function exposedPorts(change: string, rest: string): string[] {
  const out: string[] = [];
  for (const spec of rest.trim().split(/\s+/)) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo < 1 || hi > 65535 || hi < lo) throw bad(change, `invalid port ${JSON.stringify(spec)} (want PORT[-PORT][/tcp|udp|sctp], 1-65535)`);
    const proto = (m[3] ?? 'tcp').toLowerCase();
    for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  }
  return out;
}

export function applyChange(config: RunConfig, change: string): void {
  const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(change);
  if (!m) throw bad(change, 'want INSTRUCTION ARGS');
  const [, instr, rest] = m as unknown as [string, string, string];
  switch (instr.toUpperCase()) {
    case 'CMD':
      config.Cmd = argv(change, rest);
      return;
    case 'ENTRYPOINT':
      config.Entrypoint = argv(change, rest);
      return;
    case 'ENV': {
      const env = [...(config.Env ?? [])];
      for (const [k, v] of pairs(change, rest)) {
        const i = env.findIndex((e) => e.startsWith(`${k}=`));
        if (i >= 0) env[i] = `${k}=${v}`;
        else env.push(`${k}=${v}`);
      }
      config.Env = env;
      return;
    }
    case 'LABEL':
      config.Labels = { ...(config.Labels ?? {}), ...Object.fromEntries(pairs(change, rest)) };
      return;
    case 'WORKDIR':
      config.WorkingDir = rest.trim();
      return;
    case 'USER':
      config.User = rest.trim();
      return;
    case 'EXPOSE': {
      const ports = { ...(config.ExposedPorts ?? {}) };
      for (const p of exposedPorts(change, rest)) ports[p] = {};
      config.ExposedPorts = ports;
      return;
    }
    case 'VOLUME': {
      const vols = { ...(config.Volumes ?? {}) };
      const t = rest.trim();
      for (const v of t.startsWith('[') ? jsonStrings(change, t) : t.split(/\s+/)) vols[v] = {};
      config.Volumes = vols;
      return;
    }
    default:
      throw bad(change, `unsupported instruction ${instr} (CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME)`);
  }
}
