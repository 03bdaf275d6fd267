/**
 * The acceptance test of issue 10's library part: docs/library.md holds
 * examples/runtime-cycle.ts verbatim, and that very program runs a runtime's
 * whole cycle (pull with progress + signal, createContainer without
 * mounting, mountSpec, a mount in a new mount namespace, runc on it,
 * diffStream, commit, tag, remove) against the busybox fixture, on overlay
 * and on vfs, leaving no mount and no container behind.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../helpers/cli.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';
import { Store } from '../../src/index.js';

const EXAMPLE = join(REPO_ROOT, 'examples', 'runtime-cycle.ts');
const DOC = join(REPO_ROOT, 'docs', 'library.md');
const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

/** The fenced block between the BEGIN/END markers of docs/library.md. */
function docBlock(): string {
  const text = fs.readFileSync(DOC, 'utf8');
  const m = /<!-- BEGIN examples\/runtime-cycle\.ts -->\n```ts\n([\s\S]*?)```\n<!-- END examples\/runtime-cycle\.ts -->/.exec(text);
  assert.ok(m, 'docs/library.md has the example block');
  return m[1]!;
}

describe('docs/library.md: the runtime cycle', () => {
  let tmpfs: Tmpfs;
  const mountsBefore = mountPoints();
  before(() => {
    tmpfs = mountTmpfs('1g');
  });
  after(() => {
    tmpfs?.cleanup();
    assert.deepEqual(mountPoints(), mountsBefore, 'no mount left behind');
  });

  it('docs/library.md holds examples/runtime-cycle.ts verbatim', () => {
    assert.equal(docBlock(), fs.readFileSync(EXAMPLE, 'utf8'));
  });

  for (const driver of ['overlay', 'vfs']) {
    it(`the program runs the whole cycle (${driver}): runc writes in the container, the diff tar has it, commit + tag register it, the container is gone`, async () => {
      const root = join(tmpfs.dir, `root-${driver}`);
      // The doc's program, run as a reader would; 'tsgraph' resolves to src/ through test/types/tsconfig.json.
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', EXAMPLE, root, `oci:${FIXTURE}`], {
        cwd: REPO_ROOT,
        env: { ...process.env, TSX_TSCONFIG_PATH: join(REPO_ROOT, 'test', 'types', 'tsconfig.json'), TSGRAPH_DRIVER: driver, TMPDIR: tmpfs.dir },
        timeout: 180_000,
      });
      const lines = stdout.trim().split('\n');
      const summary = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
      try {
        assert.match(stdout, /pull: unpacked [0-9a-f]{12}/, 'pull progress reached the program');
        assert.equal(summary.runc, 'written by runc', stderr);
        assert.equal(summary.mountType, driver === 'overlay' ? 'overlay' : 'bind');
        assert.equal(summary.committed, 'localhost/runtime-example:v1');
        assert.equal(summary.tagged, 'localhost/runtime-example:latest');
        assert.deepEqual(summary.history, ['tsgraph commit', 'tsgraph test layer 0']);
        assert.equal(summary.containersLeft, 0);
        // The diff stream is a layer tar holding what runc wrote.
        const listing = execFileSync('tar', ['-tvf', summary.diffTar as string], { encoding: 'utf8' });
        assert.match(listing, /^-\S+ 0\/0 +16 .* hello\.txt$/m);
        // The committed image has the file; its two names are one image.
        await using store = await Store.open({ root, driver });
        const images = store.listImages();
        const v1 = images.find((i) => i.name === 'localhost/runtime-example:v1')!;
        const latest = images.find((i) => i.name === 'localhost/runtime-example:latest')!;
        assert.equal(v1.manifestDigest, latest.manifestDigest);
        assert.equal(latest.manifestDigest, summary.digest);
        const m = await store.mount('localhost/runtime-example:latest', { name: 'check' });
        assert.equal(fs.readFileSync(join(m.path, 'hello.txt'), 'utf8'), 'written by runc\n');
        await store.removeContainer('check');
        assert.deepEqual(store.listContainers(), []);
      } finally {
        fs.rmSync(summary.work as string, { recursive: true, force: true });
      }
    });
  }
});
