/**
 * Subordinate id ranges (/etc/subuid, /etc/subgid; shadow's subuid(5)):
 * lines `USER:START:COUNT`, USER a name or a numeric uid. newuidmap and
 * newgidmap allow a user to map exactly these ranges into a namespace.
 */
import * as fs from 'node:fs';

export interface SubIdRange {
  start: number;
  count: number;
}

/** Lines read from a subid file: bounded, as any file the user does not control. */
const MAX_FILE = 1 << 20;
const MAX_ID = 0xffff_fffe;

/** The ranges `file` gives to `user` (by name) or `uid`, in file order; [] when none or no file. */
export function subIdRanges(file: string, user: string | undefined, uid: number): SubIdRange[] {
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const buf = Buffer.alloc(MAX_FILE);
      const n = fs.readSync(fd, buf, 0, MAX_FILE, 0);
      text = buf.subarray(0, n).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return [];
  }
  return parseSubIds(text, user, uid);
}

export function parseSubIds(text: string, user: string | undefined, uid: number): SubIdRange[] {
  const out: SubIdRange[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [who, s, c] = line.split(':');
    if (who === undefined || s === undefined || c === undefined) continue;
    if (who !== user && who !== String(uid)) continue;
    if (!/^\d+$/.test(s) || !/^\d+$/.test(c)) continue;
    const start = Number(s);
    const count = Number(c);
    if (count <= 0 || start + count - 1 > MAX_ID) continue;
    out.push({ start, count });
  }
  return out;
}

/**
 * The map newuidmap/newgidmap are given: id 0 in the namespace is the user's
 * own `id`, 1.. the ranges one after the other. As `inside outside count`
 * triples, flat (the argument list of newuidmap after the pid).
 */
export function idMapArgs(id: number, ranges: SubIdRange[]): string[] {
  const args = ['0', String(id), '1'];
  let next = 1;
  for (const r of ranges) {
    args.push(String(next), String(r.start), String(r.count));
    next += r.count;
  }
  return args;
}

/** How many ids the namespace has (1 + the ranges). */
export function idCount(ranges: SubIdRange[]): number {
  return ranges.reduce((n, r) => n + r.count, 1);
}
