/**
 * `tsgraph login` on a terminal asks like docker: "Username: " (echoed) when
 * -u is not given, then "Password: " without echo. Driven on a real
 * pseudo-terminal (python3's pty module: fork a child on a new pty, answer
 * the prompts as a person would type them, record everything the terminal
 * shows). Without a terminal and without --password-stdin it refuses.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

/**
 * argv: timeout_s, then pairs of (prompt to wait for, line to type), then
 * `--`, then the command. Prints everything the terminal showed, then a
 * last line "EXIT <status>". Every wait is bounded by the timeout.
 */
const DRIVER = String.raw`
import os, pty, select, sys, time
timeout = float(sys.argv[1]); rest = sys.argv[2:]; sep = rest.index('--')
pairs = list(zip(rest[:sep:2], rest[1:sep:2])); cmd = rest[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
deadline = time.time() + timeout; seen = b''; step = 0
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.1)
    if fd in r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
    if step < len(pairs) and seen.count(pairs[step][0].encode()) > sum(1 for p in pairs[:step] if p[0] == pairs[step][0]):
        os.write(fd, pairs[step][1].encode() + b'\r'); step += 1
else:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode('utf8', 'replace') + '\nEXIT %d\n' % (os.waitstatus_to_exitcode(status)))
`;

async function onTty(pairs: Array<[string, string]>, args: string[], env: Record<string, string>): Promise<{ screen: string; code: number }> {
  const argv = ['-c', DRIVER, '60', ...pairs.flat(), '--', process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...args];
  const child = spawn('python3', argv, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const m = /\nEXIT (-?\d+)\n$/.exec(out);
  assert.ok(m, `driver failed: ${err}`);
  return { screen: out.slice(0, m.index), code: Number(m[1]) };
}

describe('login prompts on a terminal', () => {
  let reg: TestRegistry;
  let sb: Sandbox;
  before(async () => {
    reg = await startRegistry('basic');
    sb = makeSandbox();
  });
  after(async () => {
    await reg?.stop();
    sb?.cleanup();
  });
  const configFile = () => join(sb.dockerConfigDir, 'config.json');

  it('asks for the user name (echoed) and the password (not echoed), then stores them', async () => {
    const r = await onTty([['Username: ', TEST_USER], ['Password: ', TEST_PASSWORD]], ['login', reg.host], sb.env);
    assert.equal(r.code, 0, r.screen);
    assert.match(r.screen, /Username: tester/);
    assert.match(r.screen, /Password: /);
    assert.equal(r.screen.includes(TEST_PASSWORD), false, 'the password is never echoed');
    assert.match(r.screen, /Login Succeeded/);
    const cfg = JSON.parse(fs.readFileSync(configFile(), 'utf8'));
    assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), `${TEST_USER}:${TEST_PASSWORD}`);
  });

  it('with -u asks only for the password; a wrong one is TSG_AUTH_FAILED and stores nothing', async () => {
    fs.rmSync(configFile(), { force: true });
    const r = await onTty([['Password: ', 'not-the-password']], ['login', reg.host, '-u', TEST_USER], sb.env);
    assert.equal(r.code, 4, r.screen);
    assert.equal(r.screen.includes('Username:'), false);
    assert.equal(r.screen.includes('not-the-password'), false);
    assert.match(r.screen, /wrong username or password \(TSG_AUTH_FAILED\)/);
    assert.equal(fs.existsSync(configFile()), false);
  });

  it('Ctrl-C at the prompt cancels (TSG_ABORTED); without a terminal the password must come from --password-stdin', async () => {
    const r = await onTty([['Password: ', '\u0003']], ['login', reg.host, '-u', TEST_USER, '--json'], sb.env);
    assert.notEqual(r.code, 0);
    assert.match(r.screen, /TSG_ABORTED/);
    const piped = await runCli(['login', reg.host, '-u', TEST_USER], sb.env);
    assert.equal(piped.code, 2);
    assert.match(piped.stderr, /no terminal.*--password-stdin.*\(TSG_USAGE\)/);
  });
});
