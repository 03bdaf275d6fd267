/**
 * The copy-up report as a picture: one row per operation, two panels —
 * first-write latency (p50 bar, p99 tick, second-write p50 dot; log scale)
 * and bytes copied per file / file size — bars per target, grouped by file
 * size. Written as a string: SVG alone, or an HTML page holding the SVG and
 * the numbers as tables. No dependencies.
 */
import type { CopyUpCell, CopyUpReport } from './copy-up.js';
import { OP_DESCRIPTIONS } from './ops.js';
import { formatSize, formatUs } from './stats.js';

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#9c755f'];
const PANEL_W = 460;
const PANEL_H = 170;
const ROW_H = PANEL_H + 70;
const LEFT = 70;
const TOP = 90;

/** Text for XML and HTML: the five special characters escaped. */
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));

function decades(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

interface Panel {
  x: number;
  y: number;
  title: string;
  cells: CopyUpCell[];
  sizes: number[];
  targets: string[];
}

function groups(p: Panel, draw: (cell: CopyUpCell, x: number, w: number, color: string) => string): string {
  const gw = PANEL_W / Math.max(1, p.sizes.length);
  const bw = Math.min(28, (gw - 12) / Math.max(1, p.targets.length));
  let out = '';
  p.sizes.forEach((size, gi) => {
    const gx = p.x + gi * gw + (gw - bw * p.targets.length) / 2;
    out += `<text x="${fmt(p.x + gi * gw + gw / 2)}" y="${fmt(p.y + PANEL_H + 14)}" text-anchor="middle" class="tick">${esc(formatSize(size))}</text>`;
    p.targets.forEach((t, ti) => {
      const cell = p.cells.find((c) => c.size === size && c.target === t);
      if (cell && !cell.error && cell.first.count > 0) out += draw(cell, gx + ti * bw, bw - 2, COLORS[ti % COLORS.length]!);
    });
  });
  return out;
}

function latencyPanel(p: Panel): string {
  const values = p.cells.flatMap((c) => (c.error ? [] : [c.first.p50Us, c.first.p99Us, c.second.p50Us])).filter((v) => v > 0);
  const lo = Math.max(0.1, Math.min(...values, 1));
  const hi = Math.max(...values, 10);
  const ticks = decades(lo, hi);
  const [min, max] = [Math.log10(ticks[0]!), Math.log10(ticks[ticks.length - 1]!)];
  const yOf = (us: number) => p.y + PANEL_H - ((Math.log10(Math.max(us, ticks[0]!)) - min) / Math.max(1e-9, max - min)) * PANEL_H;
  let out = `<text x="${p.x}" y="${p.y - 8}" class="title">${esc(p.title)}</text>`;
  for (const t of ticks) {
    out += `<line x1="${p.x}" x2="${p.x + PANEL_W}" y1="${fmt(yOf(t))}" y2="${fmt(yOf(t))}" class="grid"/>`;
    out += `<text x="${p.x - 6}" y="${fmt(yOf(t) + 4)}" text-anchor="end" class="tick">${esc(formatUs(t))}</text>`;
  }
  out += groups(p, (c, x, w, color) => {
    const y = yOf(c.first.p50Us);
    const tip = `${c.target} ${formatSize(c.size)}: first p50 ${formatUs(c.first.p50Us)}, p99 ${formatUs(c.first.p99Us)}, max ${formatUs(c.first.maxUs)}; second p50 ${formatUs(c.second.p50Us)}`;
    return (
      `<g><title>${esc(tip)}</title><rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(w)}" height="${fmt(p.y + PANEL_H - y)}" fill="${color}"/>` +
      `<line x1="${fmt(x)}" x2="${fmt(x + w)}" y1="${fmt(yOf(c.first.p99Us))}" y2="${fmt(yOf(c.first.p99Us))}" class="p99"/>` +
      `<circle cx="${fmt(x + w / 2)}" cy="${fmt(yOf(c.second.p50Us))}" r="2.5" class="second"/></g>`
    );
  });
  return out;
}

function bytesPanel(p: Panel): string {
  const top = Math.max(1, ...p.cells.map((c) => c.copied.ratio));
  const yOf = (r: number) => p.y + PANEL_H - (Math.min(r, top) / top) * PANEL_H;
  let out = `<text x="${p.x}" y="${p.y - 8}" class="title">${esc(p.title)}</text>`;
  for (const t of [0, top / 2, top]) {
    out += `<line x1="${p.x}" x2="${p.x + PANEL_W}" y1="${fmt(yOf(t))}" y2="${fmt(yOf(t))}" class="grid"/>`;
    out += `<text x="${p.x - 6}" y="${fmt(yOf(t) + 4)}" text-anchor="end" class="tick">${esc(t.toFixed(2))}</text>`;
  }
  out += groups(p, (c, x, w, color) => {
    const y = yOf(c.copied.ratio);
    const tip = `${c.target} ${formatSize(c.size)}: ${c.copied.p50} bytes copied per ${c.op === 'rename-dir' ? 'dir' : 'file'} (${c.copied.method})`;
    return `<g><title>${esc(tip)}</title><rect x="${fmt(x)}" y="${fmt(Math.min(y, p.y + PANEL_H - 1))}" width="${fmt(w)}" height="${fmt(Math.max(1, p.y + PANEL_H - y))}" fill="${color}"/></g>`;
  });
  return out;
}

/** The report as a standalone SVG document. */
export function copyUpSvg(report: CopyUpReport): string {
  const targets = [...new Set(report.results.map((c) => c.target))];
  const ops = report.settings.ops.filter((op) => report.results.some((c) => c.op === op));
  const width = LEFT + 2 * (PANEL_W + LEFT) + 10;
  const height = TOP + ops.length * ROW_H + 10;
  let body = '';
  body += `<text x="10" y="22" class="head">tsgraph bench copy-up: first write (copy-up) vs second write</text>`;
  const h = report.host;
  body += `<text x="10" y="40" class="tick">${esc(`${report.startedAt} · Linux ${h.kernel} · ${h.cpus} CPUs · Node ${h.node} · work dir on ${h.workFs}`)}</text>`;
  targets.forEach((t, i) => {
    const x = 10 + i * 150;
    body += `<rect x="${x}" y="52" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 16}" y="62" class="tick">${esc(t)}</text>`;
  });
  body += `<text x="${10 + targets.length * 150}" y="62" class="tick">bar: first p50 · tick: first p99 · dot: second p50</text>`;
  ops.forEach((op, row) => {
    const cells = report.results.filter((c) => c.op === op);
    const sizes = [...new Set(cells.map((c) => c.size))].sort((a, b) => a - b);
    const y = TOP + row * ROW_H + 20;
    const unit = op === 'rename-dir' ? 'dir' : 'file';
    body += latencyPanel({ x: LEFT, y, title: `${op}: latency (log)`, cells, sizes, targets });
    body += bytesPanel({ x: 2 * LEFT + PANEL_W, y, title: `${op}: bytes copied per ${unit} / ${unit} bytes`, cells, sizes, targets });
    body += `<text x="${LEFT}" y="${y + PANEL_H + 32}" class="note">${esc(OP_DESCRIPTIONS[op])}</text>`;
  });
  const style =
    '.head{font:bold 15px sans-serif}.title{font:bold 12px sans-serif}.tick{font:11px sans-serif;fill:#333}.note{font:italic 11px sans-serif;fill:#555}' +
    '.grid{stroke:#ddd;stroke-width:1}.p99{stroke:#000;stroke-width:2}.second{fill:#fff;stroke:#000;stroke-width:1}';
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<style>${style}</style><rect width="100%" height="100%" fill="#fff"/>${body}</svg>\n`
  );
}

/** The report as an HTML page: the SVG chart, then one table per operation. */
export function copyUpHtml(report: CopyUpReport): string {
  let tables = '';
  for (const op of report.settings.ops) {
    const cells = report.results.filter((c) => c.op === op);
    if (!cells.length) continue;
    const head = ['target', 'size', 'files', 'first p50', 'first p99', 'first max', 'second p50', 'first/second', 'copied p50', 'copied/size', 'note'];
    const rows = cells.map((c) =>
      [c.target, formatSize(c.size), String(c.files), formatUs(c.first.p50Us), formatUs(c.first.p99Us), formatUs(c.first.maxUs), formatUs(c.second.p50Us), `${c.ratio}×`, String(c.copied.p50), String(c.copied.ratio), c.error ?? c.note ?? '']
        .map((v) => `<td>${esc(v)}</td>`)
        .join(''),
    );
    tables += `<h2>${esc(op)}</h2><p>${esc(OP_DESCRIPTIONS[op])}</p><table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${r}</tr>`).join('')}</table>`;
  }
  const skipped = report.targets.filter((t) => t.skipped).map((t) => `<li>${esc(t.name)}: ${esc(t.skipped!)}</li>`);
  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>tsgraph bench copy-up</title>` +
    `<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head>` +
    `<body><h1>tsgraph bench copy-up</h1>${copyUpSvg(report)}${skipped.length ? `<h2>skipped</h2><ul>${skipped.join('')}</ul>` : ''}${tables}</body></html>\n`
  );
}
