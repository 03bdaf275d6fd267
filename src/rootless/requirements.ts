/**
 * What rootless tsgraph needs from the machine, checked before a verb does
 * anything (a verb that would fail half-way must refuse at once, naming the
 * missing piece, and leave the store as it was):
 *
 *  - unprivileged user namespaces: `user.max_user_namespaces` > 0, and where
 *    the knobs exist `kernel.unprivileged_userns_clone` = 1 (Debian's older
 *    kernels) and no AppArmor restriction (Ubuntu ≥ 23.10);
 *  - util-linux `unshare` (makes the namespaces);
 *  - newuidmap / newgidmap (Debian package `uidmap`), setuid helpers that
 *    map the user's subordinate ids;
 *  - a range for the user in /etc/subuid and /etc/subgid.
 *
 * Without a subordinate range, TSGRAPH_ROOTLESS_IDS=single asks for the
 * single-id mode instead (only the user's own id is mapped; no newuidmap).
 */
import * as fs from 'node:fs';
import { delimiter, join } from 'node:path';
import { userInfo } from 'node:os';
import { UnsupportedError } from '../errors.js';
import { type SubIdRange, subIdRanges } from './subid.js';
import { rootlessState } from './userns.js';

export interface RootlessPlan {
  /** `subid`: 0 = the user, 1.. = the subordinate ranges; `single`: the user's id only. */
  mode: 'subid' | 'single';
  uid: number;
  gid: number;
  user: string | undefined;
  uidRanges: SubIdRange[];
  gidRanges: SubIdRange[];
  unshare: string;
  newuidmap?: string | undefined;
  newgidmap?: string | undefined;
}

export interface RootlessFacts {
  env?: NodeJS.ProcessEnv;
  /** Files read (tests point these elsewhere). */
  subuidFile?: string;
  subgidFile?: string;
  procSys?: string;
}

/** Asks for the single-id mode (everything owned by the user) when no subordinate range exists. */
export const SINGLE_ID_ENV = 'TSGRAPH_ROOTLESS_IDS';

function readSysctl(procSys: string, name: string): string | undefined {
  try {
    return fs.readFileSync(join(procSys, ...name.split('.')), 'latin1').trim();
  } catch {
    return undefined;
  }
}

/** An executable file named `name` on PATH, or undefined. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir.startsWith('/')) continue; // a relative PATH entry would run whatever the cwd holds
    const p = join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Pieces missing for rootless operation, each a short phrase naming it and the remedy. */
export function missingPieces(facts: RootlessFacts = {}): { missing: string[]; plan: RootlessPlan | undefined } {
  const env = facts.env ?? process.env;
  const procSys = facts.procSys ?? '/proc/sys';
  const missing: string[] = [];
  const max = readSysctl(procSys, 'user.max_user_namespaces');
  if (max === '0') missing.push('unprivileged user namespaces (user.max_user_namespaces is 0: sysctl -w user.max_user_namespaces=15000)');
  if (readSysctl(procSys, 'kernel.unprivileged_userns_clone') === '0') {
    missing.push('unprivileged user namespaces (kernel.unprivileged_userns_clone is 0: sysctl -w kernel.unprivileged_userns_clone=1)');
  }
  if (readSysctl(procSys, 'kernel.apparmor_restrict_unprivileged_userns') === '1') {
    missing.push('unprivileged user namespaces (AppArmor restricts them: kernel.apparmor_restrict_unprivileged_userns is 1)');
  }
  const unshare = findOnPath('unshare', env);
  if (!unshare) missing.push('unshare (util-linux) on PATH');
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = env.USER || undefined;
  }
  const uidRanges = subIdRanges(facts.subuidFile ?? '/etc/subuid', user, uid);
  const gidRanges = subIdRanges(facts.subgidFile ?? '/etc/subgid', user, uid);
  const single = env[SINGLE_ID_ENV] === 'single';
  let newuidmap: string | undefined;
  let newgidmap: string | undefined;
  if (!single) {
    newuidmap = findOnPath('newuidmap', env);
    newgidmap = findOnPath('newgidmap', env);
    if (!newuidmap) missing.push('newuidmap on PATH (Debian/Ubuntu package uidmap, Fedora shadow-utils)');
    if (!newgidmap) missing.push('newgidmap on PATH (package uidmap)');
    const who = user ?? String(uid);
    if (uidRanges.length === 0) missing.push(`a subordinate uid range for ${who} in /etc/subuid (usermod --add-subuids 100000-165535 ${who}; or ${SINGLE_ID_ENV}=single)`);
    if (gidRanges.length === 0) missing.push(`a subordinate gid range for ${who} in /etc/subgid (usermod --add-subgids 100000-165535 ${who}; or ${SINGLE_ID_ENV}=single)`);
  }
  if (missing.length) return { missing, plan: undefined };
  return {
    missing,
    plan: { mode: single ? 'single' : 'subid', uid, gid, user, uidRanges: single ? [] : uidRanges, gidRanges: single ? [] : gidRanges, unshare: unshare!, newuidmap, newgidmap },
  };
}

/** A `tsgraph doctor` line (drivers/doctor.ts DoctorProbe). */
export interface RootlessProbe {
  name: string;
  ok: boolean;
  detail: string;
  remedy?: string | undefined;
}

/**
 * What `tsgraph doctor` says about rootless operation: nothing for root;
 * outside a namespace, each missing piece (the gate lets doctor run there
 * to report them); inside, the namespace's id map and which mode it is.
 */
export function rootlessProbes(facts: RootlessFacts = {}): RootlessProbe[] {
  const state = rootlessState(facts.env);
  if (state === 'root') return [];
  if (state === 'outside') {
    const { missing } = missingPieces(facts);
    if (!missing.length) return [{ name: 'rootless', ok: true, detail: 'verbs run in a user namespace with the /etc/subuid range mapped (docs/rootless.md)' }];
    return missing.map((m) => ({ name: 'rootless', ok: false, detail: `missing: ${m}`, remedy: 'see docs/rootless.md' }));
  }
  let lines: string[] = [];
  try {
    lines = fs.readFileSync('/proc/self/uid_map', 'latin1').trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  } catch {
    /* no procfs */
  }
  const single = lines.length === 1 && lines[0]!.endsWith(' 1');
  return [
    {
      name: 'rootless',
      ok: true,
      detail: single
        ? `single id (uid map ${lines[0]}): owners other than root are recorded in user.containers.override_stat`
        : `user namespace with subordinate ids (uid map ${lines.join(', ')}); overlay with userxattr`,
    },
  ];
}

/** The one-line refusal for what is missing. */
export function rootlessRefusal(missing: string[]): UnsupportedError {
  return new UnsupportedError('TSG_ROOTLESS', `rootless tsgraph needs ${missing.join('; and ')}`, { data: { missing } });
}

/** The plan, or the refusal naming every missing piece. */
export function requireRootless(facts: RootlessFacts = {}): RootlessPlan {
  const { missing, plan } = missingPieces(facts);
  if (!plan) throw rootlessRefusal(missing);
  return plan;
}
