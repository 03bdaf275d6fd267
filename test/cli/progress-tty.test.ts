/**
 * On a terminal (a pseudo-TTY from util-linux `script`), pull shows bars and
 * every layer's final line (issue 11: "unpacked" lines logged after the last
 * redraw were dropped when the bars stopped).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/cli.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

describe('pull progress on a TTY', () => {
  let sb: Sandbox;
  before(() => {
    sb = makeSandbox();
  });
  after(() => sb?.cleanup());

  it('shows the bar and each layer\'s unpacked line', () => {
    const cmd = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(join(REPO_ROOT, 'src', 'cli', 'main.ts'))} pull oci:${join(REPO_ROOT, 'fixtures', 'busybox')}`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...sb.env, TSGRAPH_DRIVER: 'vfs', TERM: 'xterm', COLUMNS: '100' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    // eslint-disable-next-line no-control-regex
    // Cursor-to-column-1 starts a fresh screen line; other escapes are dropped.
    const text = r.stdout.replace(/\x1b\[1G/g, '\n').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '\n');
    assert.match(text, /^[0-9a-f]{12} \[=+\] 100%/m, 'a finished bar');
    assert.match(text, /^[0-9a-f]{12}: unpacked \([\d.]+ [kM]B\)$/m, 'the layer\'s final line');
    assert.match(text, /^Status: Downloaded newer image/m);
  });
});
