/**
 * CLI start (issue 9): `--version` loads nothing but main.ts, `--help` and
 * `<verb> --help` load commander and the verb definitions only (no store,
 * registry, layer, zod, native addon), a verb loads its own action and no
 * other verb's; and none of that changed what the CLI prints: every help
 * text, usage error and exit code equals a snapshot taken from the CLI before
 * it was split (test/cli/fixtures/start-help.snapshot.json). Speed itself is
 * measured by benchmarks, not asserted here; what loads is a property.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { DEFAULT_REGISTRY } from '../../src/reference.js';
import { LOGIN_DEFAULT_REGISTRY, VERBS, VERB_ALIASES, benchStandIn, buildProgram, requestedVerb } from '../../src/cli/program.js';

const MAIN = join(REPO_ROOT, 'src', 'cli', 'main.ts');
const RECORDER = join(REPO_ROOT, 'test', 'helpers', 'load-recorder.ts');

interface Snapshot {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source with the load recorder; returns the result and the project files it loaded. */
async function runRecorded(args: string[], log: string, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; loaded: string[] }> {
  fs.rmSync(log, { force: true });
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', RECORDER, MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, TSGRAPH_LOAD_LOG: log },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n') : [];
  const files = new Set<string>();
  for (const l of lines) {
    const what = l.slice(4).replace(/^file:\/\//, '');
    if (what.startsWith(REPO_ROOT + '/')) files.add(what.slice(REPO_ROOT.length + 1));
  }
  return { code, stdout, stderr, loaded: [...files].sort() };
}

// output.ts (imports errors.ts only) prints usage errors in tsgraph's format.
const LIGHT = new Set(['src/cli/main.ts', 'src/cli/program.ts', 'src/cli/commander.ts', 'src/errors.ts', 'src/cli/output.ts']);

function heavy(loaded: string[]): string[] {
  return loaded.filter((f) => !LIGHT.has(f) && !f.startsWith('node_modules/commander/'));
}

describe('CLI start: what each start loads', () => {
  let dir: string;
  let log: string;
  before(() => {
    dir = makeTempDir('tsgraph-start-');
    log = join(dir, 'load.log');
  });
  after(() => removeDir(dir));

  it('--version loads main.ts and nothing else', async () => {
    const r = await runRecorded(['--version'], log);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '0.1.0\n');
    assert.deepEqual(r.loaded, ['src/cli/main.ts']);
  });

  for (const args of [['--help'], ['pull', '--help'], ['help', 'push'], ['--json', 'mount', '--help'], ['nosuch']]) {
    it(`\`${args.join(' ')}\` loads commander and the definitions only`, async () => {
      const r = await runRecorded(args, log);
      assert.equal(r.code, args[0] === 'nosuch' ? 2 : 0, r.stderr);
      assert.deepEqual(heavy(r.loaded), [], 'no store, registry, layer, verb action, dependency or addon');
      assert.ok(r.loaded.includes('src/cli/program.ts'));
    });
  }

  it('a verb loads its own action, arms the native watchdog first, and loads no other verb', async () => {
    const r = await runRecorded(['images', '--root', join(dir, 'no-root')], log);
    assert.equal(r.code, 0, r.stderr);
    const actions = r.loaded.filter((f) => f.startsWith('src/cli/commands/'));
    assert.deepEqual(actions, ['src/cli/commands/images.ts']);
    assert.ok(r.loaded.some((f) => f.endsWith('.node')), `the signal watchdog's addon is loaded before the action: ${r.loaded.join(' ')}`);
  });

  it('a pull with stderr piped loads no progress-bar library and no other verb', async () => {
    const root = join(dir, 'root');
    const r = await runRecorded(['pull', `oci:${join(REPO_ROOT, 'fixtures', 'busybox')}`], log, { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'vfs' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /localhost\/busybox:latest\n$/);
    assert.deepEqual(r.loaded.filter((f) => f.startsWith('src/cli/commands/')), ['src/cli/commands/pull.ts']);
    assert.deepEqual(r.loaded.filter((f) => f.startsWith('node_modules/cli-progress/')), []);
  });
});

describe('CLI start: output unchanged', () => {
  const snapshot = JSON.parse(fs.readFileSync(join(REPO_ROOT, 'test', 'cli', 'fixtures', 'start-help.snapshot.json'), 'utf8')) as Snapshot[];

  it('every help text, usage error and exit code equals the snapshot', async () => {
    const results = new Map<Snapshot, Awaited<ReturnType<typeof runCli>>>();
    // A few at a time: each is a tsx start.
    for (let i = 0; i < snapshot.length; i += 6) {
      const batch = snapshot.slice(i, i + 6);
      const done = await Promise.all(batch.map((s) => runCli(s.args, { TSGRAPH_ROOT: '/nonexistent-tsgraph-root' })));
      batch.forEach((s, k) => results.set(s, done[k]!));
    }
    for (const s of snapshot) {
      const r = results.get(s)!;
      const what = `tsgraph ${s.args.join(' ')}`;
      assert.equal(r.stdout, s.stdout, `${what}: stdout`);
      assert.equal(r.stderr, s.stderr, `${what}: stderr`);
      assert.equal(r.code, s.code, `${what}: exit code`);
    }
  });

  it('the snapshot covers every verb and alias but bench (whose help is its own module\'s)', () => {
    const covered = new Set(snapshot.filter((s) => s.args[1] === '--help').map((s) => s.args[0]));
    for (const v of [...VERBS, ...Object.keys(VERB_ALIASES)]) if (v !== 'bench') assert.ok(covered.has(v), v);
  });

  it('the bench stand-in in the verb list renders like the real bench', async () => {
    const ctx = { signal: new AbortController().signal };
    const withStandIn = await buildProgram(ctx, { version: '0' });
    const withReal = await buildProgram(ctx, { version: '0', verb: 'bench' });
    assert.equal(withStandIn.helpInformation(), withReal.helpInformation());
    const real = withReal.commands.find((c) => c.name() === 'bench')!;
    assert.equal(benchStandIn().summary(), real.summary());
    assert.equal(withStandIn.commands.length, withReal.commands.length);
  });

  it("login's help default is reference.ts's DEFAULT_REGISTRY", () => {
    assert.equal(LOGIN_DEFAULT_REGISTRY, DEFAULT_REGISTRY);
  });
});

describe('requestedVerb', () => {
  const cases: Array<[string[], string | undefined]> = [
    [['pull', 'x'], 'pull'],
    [['--root', 'bench', 'images'], 'images'],
    [['--root=/x', '--json', '--debug', '--driver', 'vfs', 'bench', 'copy-up'], 'bench'],
    [['ps'], 'containers'],
    [['unmount', 'c'], 'umount'],
    [['help', 'bench'], 'bench'],
    [['help'], undefined],
    [['help', 'nosuch'], undefined],
    [['--help', 'bench'], undefined],
    [['-v'], undefined],
    [['--jobs', '3', 'pull'], undefined],
    [['nosuch'], undefined],
    [['--root'], undefined],
    [[], undefined],
  ];
  for (const [args, want] of cases) {
    it(`[${args.join(' ')}] -> ${want}`, () => assert.equal(requestedVerb(args), want));
  }
});
