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

/** `K=V K2="v 2"` or the old `K V` form. */
function pairs(change: string, rest: string): Array<[string, string]> {
  const t = rest.trim();
  if (!t.includes('=')) {
    const sp = t.search(/\s/);
    if (sp < 0) throw bad(change, 'want KEY=VALUE');
    return [[t.slice(0, sp), t.slice(sp).trim()]];
  }
  const out: Array<[string, string]> = [];
  const re = /([^\s=]+)=("((?:[^"\\]|\\.)*)"|'([^']*)'|(\S*))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t))) out.push([m[1]!, m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[4] ?? m[5] ?? '')]);
  if (!out.length) throw bad(change, 'want KEY=VALUE');
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
      for (const p of rest.trim().split(/\s+/)) ports[p.includes('/') ? p : `${p}/tcp`] = {};
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
