/**
 * Results → the printed tables (markdown, so docs/benchmarks.md can keep
 * them verbatim), the JSON, and an SVG chart written as a plain string.
 */
import type { ChangeResults, Sample } from './micro.js';

export type Fs = 'tmpfs' | 'ext4';
export type Comp = 'gzip' | 'zstd';
export type Cell = Sample | { error: string };

export interface Results {
  meta: {
    date: string;
    quick: boolean;
    runs: number;
    git: string;
    machine: { cpu: string; cores: number; ramGb: number; kernel: string; node: string; fs: string; loadavg: number[]; loadavgEnd?: number[] };
    images: string[];
    skipped: Array<{ name: string; why: string }>;
    versions: Record<string, string>;
  };
  /** pull + mount, ms: fs → compression → contender → sample. */
  pull: Partial<Record<Fs, Partial<Record<Comp, Record<string, Cell>>>>>;
  /** re-pull of a present image (tmpfs, gzip), ms. */
  repull: Record<string, Cell>;
  cliStart?: { tsgraph: Sample; node: Sample };
  bigPull?: { rssMb: Sample; seconds: Sample } | { error: string };
  mountLayers?: Record<string, { mount: Sample; umount: Sample; kernel: Sample }> | { error: string };
  changes?: ChangeResults | { error: string };
  kinds: Record<string, 'tsgraph' | 'peer' | 'floor'>;
}

const ok = (c: Cell | undefined): c is Sample => !!c && !('error' in c) && Number.isFinite(c.median);
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const msf = (ms: number) => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
const verdict = (met: boolean) => (met ? 'met' : '**not met**');

interface Row {
  step: string;
  tsgraph: string;
  vs: string;
  ratio: string;
  goal: string;
  met: string;
}

function goalRows(r: Results): Row[] {
  const rows: Row[] = [];
  for (const fs of ['tmpfs', 'ext4'] as const) {
    for (const c of ['gzip', 'zstd'] as const) {
      const cells = r.pull[fs]?.[c];
      if (!cells) continue;
      const ts = cells.tsgraph;
      const peers = Object.entries(cells).filter(([n, v]) => r.kinds[n] === 'peer' && ok(v)) as Array<[string, Sample]>;
      const floors = Object.entries(cells).filter(([n, v]) => r.kinds[n] === 'floor' && ok(v)) as Array<[string, Sample]>;
      const best = peers.sort((a, b) => a[1].median - b[1].median)[0];
      const floor = floors[0];
      const step = `pull + mount, ${c}, ${fs}`;
      if (!ok(ts)) {
        rows.push({ step, tsgraph: ts ? `failed: ${(ts as { error: string }).error.slice(0, 60)}` : '–', vs: '', ratio: '', goal: '', met: '' });
        continue;
      }
      if (best) {
        const q = ts.median / best[1].median;
        rows.push({ step, tsgraph: s(ts.median), vs: `${best[0]} ${s(best[1].median)}`, ratio: `${q.toFixed(2)}×`, goal: '≤ 0.7× fastest peer', met: verdict(q <= 0.7) });
      }
      if (floor) {
        const q = ts.median / floor[1].median;
        rows.push({ step, tsgraph: s(ts.median), vs: `floor ${s(floor[1].median)}`, ratio: `${q.toFixed(2)}×`, goal: '≤ 1.6× floor', met: verdict(q <= 1.6) });
      }
    }
  }
  const rp = r.repull.tsgraph;
  if (ok(rp)) {
    const others = Object.entries(r.repull).filter(([n, v]) => n !== 'tsgraph' && ok(v)) as Array<[string, Sample]>;
    rows.push({
      step: 're-pull of a present image',
      tsgraph: s(rp.median),
      vs: others.map(([n, v]) => `${n} ${s(v.median)}`).join(', '),
      ratio: '',
      goal: '≤ 0.1 s',
      met: verdict(rp.median <= 100),
    });
  }
  if (r.cliStart) {
    const q = r.cliStart.tsgraph.median / r.cliStart.node.median;
    rows.push({ step: 'CLI start (`--version`)', tsgraph: s(r.cliStart.tsgraph.median), vs: `node -e 0 ${s(r.cliStart.node.median)}`, ratio: `${q.toFixed(2)}×`, goal: '≤ 1.3×', met: verdict(q <= 1.3) });
  }
  if (r.bigPull && !('error' in r.bigPull)) {
    const m = r.bigPull.rssMb.median;
    rows.push({ step: 'peak RSS, pull of one 1 GB layer', tsgraph: `${m.toFixed(0)} MB`, vs: `(pull took ${r.bigPull.seconds.median.toFixed(2)} s)`, ratio: '', goal: '≤ 150 MB', met: verdict(m <= 150) });
  }
  if (r.mountLayers && !('error' in r.mountLayers)) {
    const goals: Record<string, number> = { '1': 1, '128': 5, '500': 10 };
    for (const [n, v] of Object.entries(r.mountLayers)) {
      const g = goals[n];
      rows.push({
        step: `create + mount, ${n} layer${n === '1' ? '' : 's'} (library)`,
        tsgraph: msf(v.mount.median),
        vs: `umount ${msf(v.umount.median)}; kernel's part (overlay mount+umount alone) ${msf(v.kernel.median)}`,
        ratio: '',
        goal: g ? `≤ ${g} ms` : '',
        met: g ? verdict(v.mount.median <= g) : '',
      });
    }
  }
  if (r.changes && !('error' in r.changes)) {
    const ch = r.changes;
    rows.push({ step: 'diff, one changed file in the debian image', tsgraph: `${msf(ch.diff.library.median)} (library)`, vs: `CLI ${msf(ch.diff.cli.median)}`, ratio: '', goal: '', met: '' });
    for (const c of ['gzip', 'zstd'] as const) {
      const ts = ch.commit[c].median;
      const tar = (c === 'gzip' ? ch.commit.tarGzip : ch.commit.tarZstd).median;
      const q = tar / ts; // throughput of tsgraph relative to tar's
      rows.push({
        step: `commit ${ch.commit.mb} MB of changes, ${c}`,
        tsgraph: s(ts),
        vs: `tar -c \\| ${c === 'gzip' ? 'gzip' : 'zstd'} ${s(tar)}`,
        ratio: `${q.toFixed(2)}× throughput`,
        goal: '≥ 0.8×',
        met: verdict(q >= 0.8),
      });
    }
  }
  return rows;
}

function mdTable(head: string[], rows: string[][]): string {
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  // A `|` inside a cell (the floors' pipelines) would split it.
  for (const r of rows) out.push(`| ${r.map((c) => c.replace(/(?<!\\)\|/g, '\\|')).join(' | ')} |`);
  return out.join('\n');
}

/** Every contender's pull + mount median per fs/compression, then the goal table. */
export function renderTables(r: Results): string {
  const cols: Array<[Fs, Comp]> = [];
  for (const fs of ['tmpfs', 'ext4'] as const) for (const c of ['gzip', 'zstd'] as const) if (r.pull[fs]?.[c]) cols.push([fs, c]);
  const names = [...new Set(cols.flatMap(([fs, c]) => Object.keys(r.pull[fs]![c]!)))];
  const pullRows = names.map((n) => [
    n,
    ...cols.map(([fs, c]) => {
      const v = r.pull[fs]![c]![n];
      if (!v) return '–';
      if (!ok(v)) return `failed (${(v as { error: string }).error.split('\n')[0]!.slice(0, 50)})`;
      return s(v.median);
    }),
  ]);
  const goals = goalRows(r).map((g) => [g.step, g.tsgraph, g.vs, g.ratio, g.goal, g.met]);
  const m = r.meta.machine;
  return [
    `tsgraph ${r.meta.git}, ${r.meta.date}${r.meta.quick ? ' (--quick)' : ''}; ${m.cpu}, ${m.cores} cores, ${m.ramGb} GB RAM, Linux ${m.kernel}, Node ${m.node}; load average ${m.loadavg[0] ?? '?'} at the start, ${m.loadavgEnd?.[0] ?? '?'} at the end`,
    '',
    `pull + mount, median of ${r.meta.runs} runs, fresh store each run:`,
    '',
    mdTable(['contender', ...cols.map(([fs, c]) => `${c}, ${fs}`)], pullRows),
    '',
    mdTable(['step', 'tsgraph', 'compared with', 'ratio', 'goal', ''], goals),
    ...(r.meta.skipped.length ? ['', ...r.meta.skipped.map((k) => `skipped: ${k.name}: ${k.why}`)] : []),
  ].join('\n');
}

// ---- SVG ------------------------------------------------------------------

const COLORS = ['#d9480f', '#1c7ed6', '#2f9e44', '#7048e8', '#868e96', '#adb5bd', '#0c8599', '#f59f00', '#c2255c'];
const esc = (x: string) => x.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Panel {
  title: string;
  unit: string;
  groups: Array<{ label: string; bars: Array<{ series: string; value: number }> }>;
}

function panels(r: Results): Panel[] {
  const out: Panel[] = [];
  const pull: Panel = { title: 'pull + mount (median)', unit: 's', groups: [] };
  for (const fs of ['tmpfs', 'ext4'] as const)
    for (const c of ['gzip', 'zstd'] as const) {
      const cells = r.pull[fs]?.[c];
      if (!cells) continue;
      const bars = Object.entries(cells).filter(([, v]) => ok(v)).map(([n, v]) => ({ series: n, value: (v as Sample).median / 1000 }));
      pull.groups.push({ label: `${c}, ${fs}`, bars });
    }
  if (pull.groups.length) out.push(pull);
  const rp = Object.entries(r.repull).filter(([, v]) => ok(v));
  if (rp.length) out.push({ title: 're-pull of a present image', unit: 's', groups: [{ label: 'gzip, tmpfs', bars: rp.map(([n, v]) => ({ series: n, value: (v as Sample).median / 1000 })) }] });
  if (r.cliStart)
    out.push({ title: 'CLI start', unit: 's', groups: [{ label: '--version', bars: [{ series: 'tsgraph', value: r.cliStart.tsgraph.median / 1000 }, { series: 'node -e 0', value: r.cliStart.node.median / 1000 }] }] });
  if (r.mountLayers && !('error' in r.mountLayers))
    out.push({
      title: 'create + mount / umount (library)',
      unit: 'ms',
      groups: Object.entries(r.mountLayers).map(([n, v]) => ({ label: `${n} layer${n === '1' ? '' : 's'}`, bars: [
          { series: 'tsgraph', value: v.mount.median },
          { series: 'tsgraph umount', value: v.umount.median },
          { series: 'kernel: overlay mount+umount', value: v.kernel.median },
        ] })),
    });
  if (r.changes && !('error' in r.changes)) {
    const c = r.changes.commit;
    out.push({
      title: `commit ${c.mb} MB of changes`,
      unit: 's',
      groups: [
        { label: 'gzip', bars: [{ series: 'tsgraph', value: c.gzip.median / 1000 }, { series: 'tar -c | gzip/zstd', value: c.tarGzip.median / 1000 }] },
        { label: 'zstd', bars: [{ series: 'tsgraph', value: c.zstd.median / 1000 }, { series: 'tar -c | gzip/zstd', value: c.tarZstd.median / 1000 }] },
      ],
    });
  }
  return out;
}

/** Horizontal bars, one panel per step, one color per contender across panels. */
export function renderSvg(r: Results): string {
  const ps = panels(r);
  const series = [...new Set(ps.flatMap((p) => p.groups.flatMap((g) => g.bars.map((b) => b.series))))];
  const color = (n: string) => COLORS[series.indexOf(n) % COLORS.length]!;
  const W = 900;
  const left = 330;
  const barH = 14;
  const parts: string[] = [];
  let y = 30;
  parts.push(`<text x="10" y="20" font-size="15" font-weight="bold">tsgraph bench — ${esc(r.meta.date)} — ${esc(r.meta.machine.cpu)}, ${r.meta.machine.cores} cores${r.meta.quick ? ' (--quick)' : ''}</text>`);
  for (const p of ps) {
    y += 14;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(p.title)} (${p.unit})</text>`);
    y += 8;
    const max = Math.max(...p.groups.flatMap((g) => g.bars.map((b) => b.value)), 1e-9);
    for (const g of p.groups) {
      parts.push(`<text x="10" y="${y + 12}" font-size="12" fill="#333">${esc(g.label)}</text>`);
      for (const b of g.bars) {
        const w = Math.max(1, ((W - left - 90) * b.value) / max);
        parts.push(`<text x="${left - 6}" y="${y + barH - 3}" font-size="11" text-anchor="end" fill="#555">${esc(b.series)}</text>`);
        parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${color(b.series)}"/>`);
        parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 3}" font-size="11">${b.value.toFixed(p.unit === 'ms' || b.value < 1 ? 3 : 2)}</text>`);
        y += barH;
      }
      y += 6;
    }
  }
  y += 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
