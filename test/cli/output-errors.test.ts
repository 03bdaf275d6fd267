/**
 * `diff -o` write failures are one tsgraph error line (issue 11): a missing
 * directory, a directory, a reader that closes the pipe early (EPIPE); and
 * `--json` prints a result when the tar went to a file. A failed `bundle`
 * leaves no directory behind.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, parseJsonOutput, runCli, spawnCli } from '../helpers/cli.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');
const ONE_LINE = /^tsgraph: [^\n]+ \(TSG_[A-Z_]+\)\n$/;

describe('diff -o: output errors', () => {
  let sb: Sandbox;
  let env: Record<string, string>;
  before(async () => {
    sb = makeSandbox();
    env = { ...sb.env, TSGRAPH_DRIVER: 'vfs' };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    const m = await runCli(['mount', 'busybox', '--name', 'c', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    // Big enough that the tar cannot sit whole in a pipe buffer: the EPIPE case needs a writer still writing.
    fs.writeFileSync(join(parseJsonOutput<{ path: string }>(m).path, 'big'), Buffer.alloc(32 << 20, 7));
  });
  after(async () => {
    await runCli(['rm', 'c'], env);
    sb?.cleanup();
  });

  it('a missing directory or a directory is one line, and no file is left', async () => {
    const missing = await runCli(['diff', 'c', '-o', join(sb.dir, 'nope', 'x.tar')], env);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, ONE_LINE);
    assert.match(missing.stderr, /cannot write .*nope\/x\.tar: its directory does not exist \(TSG_NOT_FOUND\)/);
    const dir = await runCli(['diff', 'c', '-o', sb.dir], env);
    assert.equal(dir.code, 2);
    assert.match(dir.stderr, /it is a directory \(TSG_USAGE\)\n$/);
    const json = await runCli(['--json', 'diff', 'c', '-o', join(sb.dir, 'nope', 'x.tar')], env);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(json).error.code, 'TSG_NOT_FOUND');
    assert.deepEqual(fs.readdirSync(sb.dir).filter((f) => f.includes('.tmp-')), [], 'no temp file left');
  });

  it('a reader that closes early (EPIPE) is one line, not a stack', async () => {
    const child = spawnCli(['diff', 'c', '-o', '-'], env);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.once('data', () => child.stdout!.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 2, stderr);
    assert.match(stderr, ONE_LINE);
    assert.match(stderr, /the reader closed the pipe \(TSG_USAGE\)/);
  });

  it('--json with -o FILE prints what was written', async () => {
    const out = join(sb.dir, 'c.tar');
    const r = await runCli(['--json', 'diff', 'c', '-o', out], env);
    assert.equal(r.code, 0, r.stderr);
    const res = parseJsonOutput<{ output: string; bytes: number; changes: number }>(r);
    assert.equal(res.output, out);
    assert.equal(res.bytes, fs.statSync(out).size);
    assert.ok(res.bytes > 32 << 20);
    assert.ok(res.changes >= 1);
  });

  it('a failed bundle leaves no directory it made', async () => {
    const dir = join(sb.dir, 'bundles', 'deep', 'b1');
    const r = await runCli(['bundle', 'nosuch-image', dir], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, ONE_LINE);
    assert.equal(fs.existsSync(join(sb.dir, 'bundles')), false, 'the directories made for it are gone');
    // A directory that was there before stays.
    fs.mkdirSync(join(sb.dir, 'keep'));
    assert.notEqual((await runCli(['bundle', 'nosuch-image', join(sb.dir, 'keep', 'b2')], env)).code, 0);
    assert.equal(fs.existsSync(join(sb.dir, 'keep')), true);
    assert.equal(fs.existsSync(join(sb.dir, 'keep', 'b2')), false);
  });
});
