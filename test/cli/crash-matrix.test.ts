/**
 * The crash matrix: every named step of pull, mount, commit, push, rm, rmi
 * and gc, killed there (TSGRAPH_CRASH_AT makes the process SIGKILL itself,
 * as a power cut or `kill -9` would), then:
 *   1. `check` reports what it finds and never crashes;
 *   2. `check --repair` leaves no fault (exit 0 or 1, never 4: nothing a
 *      registered image or container needs was lost);
 *   3. a second `check` is clean;
 *   4. the next pull, mount, umount and rm work.
 * Each case starts from a fresh root on a tmpfs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CliResult, parseJsonOutput, runCli } from '../helpers/cli.js';
import { makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';

interface Report {
  status: 'clean' | 'repaired' | 'damaged';
  findings: Array<{ kind: string; severity: string; detail: string; repaired?: boolean }>;
}

/** What runs before the crashing command, and the command itself. */
interface Case {
  step: string;
  setup: Array<string[]>;
  crash: string[];
}

const IMAGE = 'localhost/layout:t1';
const OTHER = 'localhost/layout:t2';

function cases(layout: string, registry: () => string): Case[] {
  const pull = ['pull', `oci:${layout}:t1`];
  const mounted = [pull, ['mount', IMAGE, '--name', 'ctr']];
  const withChange = [...mounted, ['__write', 'ctr']];
  return [
    ...['pull:ingest-partial', 'pull:blob-committed', 'pull:layer-created', 'pull:layer-applied', 'pull:layer-complete', 'pull:before-register', 'pull:registered'].map(
      (step) => ({ step, setup: [], crash: pull }),
    ),
    ...['mount:after-claim', 'mount:after-layer-create', 'layer-mount:after-count', 'layer-mount:after-mount', 'mount:after-mount'].map((step) => ({
      step,
      setup: [pull],
      crash: ['mount', IMAGE, '--name', 'ctr'],
    })),
    ...['commit:layer-written', 'commit:after-blob', 'commit:before-register', 'commit:registered'].map((step) => ({
      step,
      setup: withChange,
      crash: ['commit', 'ctr', 'localhost/committed:1'],
    })),
    { step: 'push:blobs-uploaded', setup: [pull], crash: ['push', IMAGE, `${registry()}/crash/pushed:1`] },
    { step: 'layer-umount:after-unmount', setup: mounted, crash: ['umount', 'ctr'] },
    { step: 'rm:after-mark', setup: mounted, crash: ['rm', 'ctr'] },
    { step: 'rmi:before-remove', setup: [pull], crash: ['rmi', IMAGE] },
    // gc has a layer to remove: the second image's own top layer, once its name is gone.
    { step: 'gc:layer-removed', setup: [pull, ['pull', `oci:${layout}:t2`], ['rmi', OTHER]], crash: ['gc'] },
  ];
}

describe('crash matrix: SIGKILL at every named step, then check, repair, and carry on', () => {
  const tmp = suiteTmpfs('1g');
  let reg: TestRegistry;
  let layout: string;

  before(async () => {
    reg = await startRegistry('plain');
    layout = join(tmp.dir, 'layout');
    const base = await makeLayer([
      { path: 'bin/', type: 'directory' },
      { path: 'bin/tool', content: randomBytes(300_000), mode: 0o755 },
      { path: 'etc/', type: 'directory' },
      { path: 'etc/hostname', content: 'crash\n' },
    ]);
    const top = await makeLayer([{ path: 'etc/motd', content: 'layer two\n' }, { path: 'data.bin', content: randomBytes(200_000) }]);
    const other = await makeLayer([{ path: 'etc/other', content: randomBytes(100_000) }]);
    writeOciLayout(layout, [
      { tag: 't1', image: makeImage({ layers: [base, top] }) },
      { tag: 't2', image: makeImage({ layers: [base, top, other] }) },
    ]);
  });
  after(async () => {
    await reg?.stop();
  });

  let n = 0;
  const env = (root: string, extra: Record<string, string> = {}) => ({
    TSGRAPH_ROOT: root,
    TSGRAPH_CONFIG_DIR: join(tmp.dir, 'config'),
    DOCKER_CONFIG: join(tmp.dir, 'docker'),
    TSGRAPH_DRIVER: 'overlay',
    ...extra,
  });
  const ok = (r: CliResult, what: string) => assert.equal(r.code, 0, `${what}: ${r.stderr}${r.stdout}`);

  const run = async (root: string, args: string[], extra: Record<string, string> = {}) => {
    if (args[0] === '__write') {
      const list = parseJsonOutput<Array<{ name: string; path?: string }>>(await runCli(['containers', '--json'], env(root)));
      const path = list.find((c) => c.name === args[1])?.path;
      assert.ok(path, `container ${args[1]} is mounted`);
      fs.writeFileSync(join(path, 'written.bin'), randomBytes(500_000));
      fs.rmSync(join(path, 'etc', 'hostname'));
      return;
    }
    ok(await runCli(args, env(root, extra)), args.join(' '));
  };

  for (const c of cases('LAYOUT', () => 'REGISTRY')) {
    it(`killed at ${c.step}`, async () => {
      const root = join(tmp.dir, `root-${n++}`);
      const real = cases(layout, () => reg.host).find((x) => x.step === c.step)!;
      for (const args of real.setup) await run(root, args);

      const killed = await runCli(real.crash, env(root, { TSGRAPH_CRASH_AT: c.step }));
      assert.equal(killed.signal, 'SIGKILL', `the step ${c.step} was reached (${real.crash.join(' ')}: exit ${killed.code} ${killed.stderr})`);

      const first = await runCli(['check', '--json'], env(root));
      assert.ok(first.code === 0 || first.code === 4, `check exits 0 or 4: ${first.code} ${first.stderr}`);
      const found = parseJsonOutput<Report>(first);
      // Nothing a registered image needs is ever lost: no blob or layer damage that a repair cannot undo.
      const lost = found.findings.filter((f) => f.kind === 'blob-missing' || f.kind === 'blob-corrupt' || f.kind === 'container-layer-missing');
      assert.deepEqual(lost, [], `nothing lost at ${c.step}`);

      const fixed = await runCli(['check', '--repair', '--json'], env(root));
      const repaired = parseJsonOutput<Report>(fixed);
      assert.ok(fixed.code === 0 || fixed.code === 1, `repair leaves no damage at ${c.step}: ${JSON.stringify(repaired.findings)}`);
      assert.equal(repaired.status === 'clean' ? 0 : 1, fixed.code);
      const again = parseJsonOutput<Report>(await runCli(['check', '--json'], env(root)));
      assert.equal(again.status, 'clean', `clean after repair: ${JSON.stringify(again.findings.filter((f) => f.severity !== 'reclaimable'))}`);

      // And the store carries on: pull, mount, write, umount, rm.
      await run(root, ['pull', `oci:${layout}:t1`]);
      await run(root, ['mount', IMAGE, '--name', 'after']);
      await run(root, ['umount', 'after']);
      await run(root, ['rm', 'after']);
      const images = parseJsonOutput<Array<{ name: string }>>(await runCli(['images', '--json'], env(root)));
      assert.ok(images.some((i) => i.name === IMAGE));
      // Leave no mounts behind for the suite's check (the crashed container may still be mounted).
      for (const ctr of parseJsonOutput<Array<{ name: string }>>(await runCli(['containers', '--json'], env(root)))) {
        await runCli(['rm', ctr.name], env(root));
      }
    });
  }
});
