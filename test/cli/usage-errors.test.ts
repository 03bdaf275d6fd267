/**
 * Argument errors go through tsgraph's error format (issue 11): one line
 * `tsgraph: … (TSG_USAGE)` or, with --json anywhere before `--`, a JSON error
 * on stdout; exit 2. Bare `tsgraph` prints help and exits 2 too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';

const ENV = { TSGRAPH_ROOT: '/nonexistent-tsgraph-root' };

describe('usage errors', () => {
  it('are one tsgraph line with TSG_USAGE and exit 2', async () => {
    for (const args of [['pull'], ['pull', '--bogus', 'x'], ['nosuch'], ['images', 'a', 'b'], ['--root']]) {
      const r = await runCli(args, ENV);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^tsgraph: .+ \(see --help\) \(TSG_USAGE\)\n$/, args.join(' '));
      assert.equal(r.stdout, '');
    }
  });

  it('print JSON with --json, before or after the verb', async () => {
    for (const args of [['--json', 'pull'], ['pull', '--json', '--bogus'], ['rm', '--json']]) {
      const r = await runCli(args, ENV);
      assert.equal(r.code, 2, args.join(' '));
      const out = JSON.parse(r.stdout) as { error: { code: string; category: string; message: string } };
      assert.equal(out.error.code, 'TSG_USAGE');
      assert.equal(out.error.category, 'usage');
      assert.ok(out.error.message.length > 0);
    }
  });

  it('bare tsgraph shows the help on stderr and exits 2; --help and help exit 0', async () => {
    const bare = await runCli([], ENV);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /^Usage: tsgraph/);
    for (const args of [['--help'], ['help'], ['pull', '--help']]) assert.equal((await runCli(args, ENV)).code, 0, args.join(' '));
  });
});
