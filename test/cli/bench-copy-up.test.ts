/**
 * The copy-up suite end to end on real mounts (tiny sizes): the matrix's
 * shape, properties of the kernel it must show (metacopy=on copies no data
 * on chmod, redirect_dir=off turns a dir rename into a copy), the CLI's
 * --json, table, chart and --help, and that nothing is left behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { benchCopyUp, COPY_UP_OPS, type CopyUpCell, type CopyUpReport } from '../../src/index.js';
import { readMountInfo } from '../../src/mount/index.js';
import { hasBtrfsTools, makeBtrfs } from '../helpers/btrfs.js';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { hookEnv, release, startCli, waitReached } from '../helpers/hooks.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';

const SIZES = [4096, 65536];
const TARGETS = ['overlay', 'overlay+redirect', 'overlay+metacopy', 'vfs'];

function mountsBelow(dir: string): string[] {
  return readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(`${dir}/`));
}

function cell(report: CopyUpReport, target: string, op: string, size?: number): CopyUpCell {
  const found = report.results.filter((c) => c.target === target && c.op === op && (size === undefined || c.size === size));
  assert.equal(found.length, 1, `one cell for ${target} ${op} ${size ?? ''}`);
  return found[0]!;
}

/** Minimal XML check: tags nest and close, attributes are quoted, text has no stray `<` or bare `&`. */
function assertWellFormedXml(xml: string): void {
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  const stack: string[] = [];
  let last = 0;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const text = xml.slice(last, m.index);
    assert.doesNotMatch(text, /</, `stray < before offset ${m.index}`);
    assert.doesNotMatch(text, /&(?!#\d+;|[a-z]+;)/, `bare & before offset ${m.index}`);
    last = tag.lastIndex;
    if (m[4]) continue;
    if (m[1]) assert.equal(stack.pop(), m[2], `</${m[2]}> closes what was opened`);
    else stack.push(m[2]!);
  }
  assert.equal(xml.slice(last).trim(), '', 'nothing after the root element');
  assert.deepEqual(stack, [], 'every element closed');
}

describe('benchCopyUp (library) on overlay with and without metacopy/redirect_dir, and vfs', () => {
  const tmp = suiteTmpfs('1g');
  let report: CopyUpReport;
  const steps: string[] = [];

  before(async () => {
    report = await benchCopyUp({
      dir: tmp.dir,
      targets: TARGETS,
      sizes: SIZES,
      maxFiles: 4,
      renameDirs: 2,
      renameDirFiles: 10,
      onProgress: (e) => steps.push(`${e.target}:${e.step}`),
    });
  });

  it('gives one cell per target × op × size, with sane statistics', () => {
    assert.equal(report.kind, 'tsgraph-bench-copy-up');
    assert.deepEqual(report.settings.sizes, SIZES);
    assert.deepEqual(report.settings.ops, [...COPY_UP_OPS]);
    assert.deepEqual(report.targets.map((t) => [t.name, t.skipped]), TARGETS.map((t) => [t, undefined]));
    const perTarget = (COPY_UP_OPS.length - 1) * SIZES.length + 1; // rename-dir is one cell
    assert.equal(report.results.length, TARGETS.length * perTarget);
    for (const c of report.results) {
      const what = `${c.target} ${c.op} ${c.size}`;
      assert.equal(c.error, undefined, what);
      assert.equal(c.files, c.op === 'rename-dir' ? 2 : 4, what);
      for (const s of [c.first, c.second]) {
        assert.equal(s.count, c.files, what);
        assert.ok(s.p50Us > 0 && s.p50Us <= s.p99Us && s.p99Us <= s.maxUs, `${what}: p50 ≤ p99 ≤ max`);
      }
      assert.equal(c.copied.method, c.driver === 'overlay' ? 'upper st_blocks' : 'st_blocks delta', what);
      assert.ok(c.copied.p50 <= c.copied.max && c.copied.max <= c.copied.total, what);
    }
    for (const t of report.targets) assert.ok(t.layerMs! >= 0 && t.containerMs! > 0, t.name);
    assert.deepEqual(report.targets.find((t) => t.name === 'overlay+metacopy')!.mountOptions, ['index=off', 'redirect_dir=on', 'metacopy=on']);
    assert.ok(steps.includes('overlay+metacopy:chmod') && steps.includes('vfs:hardlink'), 'progress names target and op');
  });

  it('chmod copies (nearly) no data with metacopy=on, and the whole file with metacopy=off', () => {
    for (const size of SIZES) {
      assert.ok(cell(report, 'overlay+metacopy', 'chmod', size).copied.max < 4096, `metacopy chmod ${size}`);
      for (const t of ['overlay', 'overlay+redirect']) {
        const c = cell(report, t, 'chmod', size);
        assert.ok(c.copied.p50 >= size && c.copied.ratio >= 1, `${t} chmod ${size} copies the file: ${c.copied.p50}`);
      }
      // Opening for write needs the data even with metacopy.
      assert.ok(cell(report, 'overlay+metacopy', 'open-rdwr', size).copied.p50 >= size);
      // An append counts the copy, not the block it added.
      assert.equal(cell(report, 'overlay', 'append', size).copied.p50, size);
      assert.equal(cell(report, 'vfs', 'append', size).copied.max, 0, 'vfs copied everything at create');
      assert.equal(cell(report, 'vfs', 'write', size).copied.max, 0);
    }
  });

  it('a dir rename is a copy without redirect_dir (EXDEV, timed like mv) and a rename with it', () => {
    const off = cell(report, 'overlay', 'rename-dir');
    assert.match(off.note ?? '', /EXDEV/);
    assert.equal(off.entriesPerDir, 10);
    assert.ok(off.copied.p50 >= 10 * 4096, `the whole dir was copied: ${off.copied.p50}`);
    for (const t of ['overlay+redirect', 'overlay+metacopy', 'vfs']) {
      const c = cell(report, t, 'rename-dir');
      assert.equal(c.note, undefined, t);
      assert.ok(c.copied.max < 4096, `${t}: no data copied`);
    }
  });

  it('notes when a write splits a hardlinked pair (overlay index=off copies one name up alone)', () => {
    for (const size of SIZES) {
      for (const t of ['overlay', 'overlay+redirect', 'overlay+metacopy']) assert.match(cell(report, t, 'hardlink', size).note ?? '', /split 4\/4 hardlinked pairs/, t);
      assert.equal(cell(report, 'vfs', 'hardlink', size).note, undefined, 'vfs keeps the link');
    }
  });

  it('leaves no mount, container or work dir behind', () => {
    assert.deepEqual(mountsBelow(tmp.dir), []);
    assert.deepEqual(fs.readdirSync(tmp.dir), []);
  });

  it('stops on abort between files and still cleans up', async () => {
    const controller = new AbortController();
    await assert.rejects(
      benchCopyUp({
        dir: tmp.dir,
        targets: ['overlay'],
        sizes: [4096],
        maxFiles: 2,
        signal: controller.signal,
        onProgress: (e) => e.step === 'chmod' && controller.abort(),
      }),
      { code: 'TSG_ABORTED' },
    );
    assert.deepEqual(mountsBelow(tmp.dir), []);
    assert.deepEqual(fs.readdirSync(tmp.dir), []);
  });

  it('refuses unknown targets, ops and sizes before making anything', async () => {
    await assert.rejects(benchCopyUp({ dir: tmp.dir, targets: ['zfs'] }), { code: 'TSG_USAGE' });
    await assert.rejects(benchCopyUp({ dir: tmp.dir, ops: ['unlink' as never] }), { code: 'TSG_USAGE' });
    await assert.rejects(benchCopyUp({ dir: tmp.dir, sizes: [0] }), { code: 'TSG_USAGE' });
    assert.deepEqual(fs.readdirSync(tmp.dir), []);
  });
});

describe('tsgraph bench copy-up (CLI)', () => {
  const tmp = suiteTmpfs('512m');
  const small = ['--sizes', '4K,8K', '--files', '3', '--rename-dirs', '2', '--rename-files', '5', '-q'];

  it('--json prints the typed report and --chart writes a well-formed SVG', async () => {
    const chart = join(tmp.dir, 'chart.svg');
    const work = join(tmp.dir, 'work');
    const r = await runCli(['bench', 'copy-up', '--targets', 'overlay,overlay+metacopy,vfs', ...small, '--dir', work, '--chart', chart, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', '-q: no progress lines');
    const report = parseJsonOutput<CopyUpReport>(r);
    assert.equal(report.kind, 'tsgraph-bench-copy-up');
    assert.deepEqual(report.settings.sizes, [4096, 8192]);
    assert.equal(report.results.length, 3 * (6 * 2 + 1));
    const svg = fs.readFileSync(chart, 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assertWellFormedXml(svg);
    for (const op of COPY_UP_OPS) assert.ok(svg.includes(`>${op}: latency (log)<`), `a panel for ${op}`);
    assert.equal((svg.match(/<rect [^>]*fill="#/g) ?? []).length >= 3 * 13, true, 'bars drawn');
    assert.deepEqual(fs.readdirSync(work), [], 'work dir emptied');
    assert.deepEqual(mountsBelow(tmp.dir), []);
    // --from re-renders the saved report without running anything.
    const saved = join(tmp.dir, 'saved.json');
    fs.writeFileSync(saved, r.stdout);
    const again = await runCli(['bench', 'copy-up', '--from', saved, '--chart', join(tmp.dir, 'again.svg')]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^overlay\+metacopy\s+8K\s+3\s/m);
    assert.equal(fs.readFileSync(join(tmp.dir, 'again.svg'), 'utf8'), svg, 'the same chart from the same numbers');
    fs.writeFileSync(saved, '{"kind":"other"}');
    assert.equal((await runCli(['bench', 'copy-up', '--from', saved])).code, 2);
  });

  it('prints a table per operation by default, and an HTML chart with tables', async () => {
    const chart = join(tmp.dir, 'chart.html');
    const r = await runCli(['bench', 'copy-up', '--drivers', 'overlay+redirect', '--ops', 'chmod,rename-dir', ...small, '--dir', tmp.dir, '--chart', chart]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^chmod: chmod\(2\)/m);
    assert.match(r.stdout, /^rename-dir: rename\(2\)/m);
    assert.match(r.stdout, /^TARGET\s+SIZE\s+FILES\s+FIRST p50\s+p99\s+max\s+SECOND p50/m);
    assert.match(r.stdout, /^overlay\+redirect\s+4K\s+3\s/m);
    assert.doesNotMatch(r.stdout, /^write:/m, 'only the ops asked for');
    const html = fs.readFileSync(chart, 'utf8');
    assert.match(html, /^<!DOCTYPE html>/);
    assertWellFormedXml(html.slice(html.indexOf('<svg'), html.indexOf('</svg>') + 6));
    assert.equal((html.match(/<table>/g) ?? []).length, 2);
    assert.deepEqual(mountsBelow(tmp.dir), []);
  });

  it('SIGINT mid-run exits 130 and leaves no mount, container or work dir', async () => {
    const hooks = join(tmp.dir, 'hooks');
    const work = join(tmp.dir, 'sig');
    fs.mkdirSync(hooks);
    const step = 'bench:container-mounted';
    const proc = startCli(['bench', 'copy-up', '--targets', 'overlay,vfs', ...small.filter((a) => a !== '-q'), '--dir', work], hookEnv(hooks, { pause: [step] }));
    await waitReached(hooks, step, proc);
    assert.equal(mountsBelow(work).length, 1, 'paused with the container mounted');
    proc.child.kill('SIGINT');
    release(hooks, step);
    const r = await proc.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /overlay: write/);
    assert.doesNotMatch(r.stderr, /overlay: append|vfs:/, 'stopped at the next file, not at the end');
    assert.deepEqual(mountsBelow(tmp.dir), []);
    assert.deepEqual(fs.readdirSync(work), []);
  });

  it('refuses bad values with a usage error', async () => {
    for (const args of [['--targets', 'zfs'], ['--sizes', 'big'], ['--files', 'x'], ['--ops', 'unlink']]) {
      const r = await runCli(['bench', 'copy-up', ...args, '--dir', tmp.dir]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /TSG_USAGE/);
    }
  });

  it('--help documents every flag', async () => {
    const r = await runCli(['bench', 'copy-up', '--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--targets', '--drivers', '--sizes', '--size', '--ops', '--files', '--budget', '--rename-dirs', '--rename-files', '--rename-size', '--dir', '--chart', '--quiet', '--from', '--json']) {
      assert.match(r.stdout, new RegExp(`${flag}\\b`), flag);
    }
    assert.match(r.stdout, /--json\s+machine-readable/, 'the global --json is listed');
  });
});

describe('benchCopyUp on btrfs (a loop btrfs the suite makes)', { skip: !hasBtrfsTools() || process.getuid?.() !== 0 ? 'needs root and mkfs.btrfs' : false }, () => {
  const tmp = suiteTmpfs('1g');

  it('counts CoW-broken extents, and detaches its loop device', async () => {
    const report = await benchCopyUp({ dir: tmp.dir, targets: ['btrfs'], sizes: [65536], ops: ['write', 'chmod', 'append'], maxFiles: 3 });
    assert.equal(report.targets[0]!.skipped, undefined);
    assert.equal(report.targets[0]!.fsType, 'btrfs');
    const write = cell(report, 'btrfs', 'write', 65536);
    assert.equal(write.copied.method, 'btrfs exclusive');
    assert.ok(write.copied.p50 > 0 && write.copied.p50 < 65536, `a 1-byte write unshares one extent, not the file: ${write.copied.p50}`);
    assert.equal(cell(report, 'btrfs', 'chmod', 65536).copied.max, 0);
    assert.equal(cell(report, 'btrfs', 'append', 65536).copied.max, 0, 'the appended block is the op’s own');
    assert.deepEqual(mountsBelow(tmp.dir), []);
    assert.doesNotMatch(execFileSync('losetup', ['-a'], { encoding: 'utf8' }), new RegExp(tmp.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.deepEqual(fs.readdirSync(tmp.dir), []);
  });

  it('with --dir on btrfs: no loop, every target counts exclusive extents (overlay copy-up is a reflink there)', async () => {
    const loop = makeBtrfs('1g');
    try {
      const report = await benchCopyUp({ dir: loop.dir, targets: ['btrfs', 'overlay'], sizes: [65536], ops: ['chmod', 'write'], maxFiles: 3 });
      assert.deepEqual(report.targets.map((t) => [t.name, t.fsType, t.skipped]), [['btrfs', 'btrfs', undefined], ['overlay', 'btrfs', undefined]]);
      for (const c of report.results) assert.equal(c.copied.method, 'btrfs exclusive', `${c.target} ${c.op}`);
      assert.ok(cell(report, 'overlay', 'chmod', 65536).copied.max < 65536, 'a reflinked copy-up shares its extents');
      assert.deepEqual(mountsBelow(loop.dir), []);
      assert.deepEqual(fs.readdirSync(loop.dir), [], 'the read-only image subvolume is gone too');
    } finally {
      loop.cleanup();
    }
  });
});
