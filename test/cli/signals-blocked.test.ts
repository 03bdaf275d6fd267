/**
 * Signals end the CLI within 2 s even while JavaScript is stuck in a
 * synchronous call, where Node cannot run its signal listeners at all (the
 * native watchdog, native/signal-watchdog.cc). The process is parked in a
 * synchronous wait (a pause point: Atomics.wait in a loop, up to 120 s),
 * then signalled; afterwards the store carries on.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { hookEnv, startCli, waitReached } from '../helpers/hooks.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';
import * as fs from 'node:fs';

describe('signals while the main thread is blocked', () => {
  const tmp = suiteTmpfs('256m');
  let env: Record<string, string>;

  before(async () => {
    env = { TSGRAPH_ROOT: join(tmp.dir, 'root'), TSGRAPH_CONFIG_DIR: join(tmp.dir, 'cfg'), DOCKER_CONFIG: join(tmp.dir, 'docker'), TSGRAPH_DRIVER: 'overlay' };
    const r = await runCli(['pull', `oci:${join(REPO_ROOT, 'fixtures', 'busybox')}`], env);
    assert.equal(r.code, 0, r.stderr);
  });

  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    it(`${sig} during a synchronous wait exits ${code} within 2 s, and the next mount works`, async () => {
      const hooks = fs.mkdtempSync(join(tmp.dir, 'hooks-'));
      const step = 'mount:before-unpack';
      const proc = startCli(['mount', 'localhost/busybox', '--name', `blocked-${sig}`], { ...env, ...hookEnv(hooks, { pause: [step] }) });
      await waitReached(hooks, step, proc);
      const sent = Date.now();
      proc.child.kill(sig);
      const r = await proc.done;
      const took = Date.now() - sent;
      assert.equal(r.code, code, `exit code after ${sig}: ${r.code} ${r.signal} ${r.stderr}`);
      assert.ok(took < 2000, `ended ${took} ms after ${sig}`);
      const again = await runCli(['mount', 'localhost/busybox', '--name', `after-${sig}`], env);
      assert.equal(again.code, 0, again.stderr);
      const check = await runCli(['check'], env);
      assert.equal(check.code, 0, check.stdout);
      assert.equal((await runCli(['rm', `after-${sig}`], env)).code, 0);
    });
  }
});
