/**
 * Issue 8, CLI-side defects:
 *   5  the store is private (0700 dirs, owned by its user; old roots tightened)
 *   10 root creation is bounded (/proc/nope), SIGTERM/SIGINT end a pull within 2 s
 *   12 terminal escapes from images are escaped; read-only verbs create no root
 *   14 a killed commit's temp ingest is shown and reclaimed by gc; a live one is not
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContentStore } from '../../src/content/store.js';
import { acquireLock } from '../../src/store/lock.js';
import { MediaType } from '../../src/oci/media-types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { blob, makeLayer, makeImage, pushImages, writeOciLayout } from '../helpers/image-builder.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { type Tmpfs, mountTmpfs, unmountBelow } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');
const MAIN = join(REPO_ROOT, 'src', 'cli', 'main.ts');

/** Every directory under `root` (find -type d), layer trees excluded: they hold image content with the image's modes. */
function storeDirs(root: string): Array<{ rel: string; mode: number }> {
  const out = execFileSync('find', [root, '-xdev', '-type', 'd', '-printf', '%m %P\\n']).toString().trim().split('\n');
  return out
    .map((l) => ({ mode: parseInt(l.slice(0, l.indexOf(' ')), 8), rel: l.slice(l.indexOf(' ') + 1) }))
    .filter(({ rel }) => !/^[^/]+\/layers\/[^/]+\/(diff|root|merged|work)(\/|$)/.test(rel) && !/^aufs\/(diff|mnt)\/[^/]+(\/|$)/.test(rel));
}

function looseDirs(root: string): string[] {
  return storeDirs(root)
    .filter((d) => d.mode & 0o077)
    .map((d) => `${d.rel || '.'} ${d.mode.toString(8)}`);
}

/** Runs a command as uid/gid 65534 (nobody) with no supplementary groups. */
function asNobody(cmd: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...cmd], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

/** Runs the CLI under `umask 000`, the loosest a caller can set. */
async function runCliUmask0(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn('sh', ['-c', 'umask 000 && exec "$@"', 'sh', process.execPath, '--import', 'tsx', MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stderr };
}

describe('defect 5: the store is private', () => {
  let dir: string;
  before(() => {
    dir = makeTempDir('tsgraph-private-');
    // Reachable by others (like /var/lib): only the store's own modes may keep them out.
    fs.chmodSync(dir, 0o755);
  });
  after(() => removeDir(dir));

  it('a fresh root made under umask 000 has no group/other bits on any store dir, and nobody cannot read it', async () => {
    const root = join(dir, 'fresh');
    const r = await runCliUmask0(['pull', '-q', `oci:${FIXTURE}`], { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'overlay' });
    assert.equal(r.code, 0, r.stderr);
    // Containers, their mounts and a commit add dirs of their own.
    const env = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'overlay' };
    assert.equal((await runCliUmask0(['mount', 'busybox', '--name', 'p1'], env)).code, 0);
    try {
      const c = await runCliUmask0(['commit', 'p1', 'localhost/p:v1'], env);
      assert.equal(c.code, 0, c.stderr);
      assert.ok(storeDirs(root).length > 10, 'the walk sees the store dirs');
      assert.deepEqual(looseDirs(root), [], 'while mounted');
    } finally {
      assert.equal((await runCli(['rm', 'p1'], env)).code, 0);
    }
    assert.deepEqual(looseDirs(root), []);
    const ls = asNobody(['ls', join(root, 'content')]);
    assert.notEqual(ls.status, 0, 'another user cannot list content/');
    const blobHex = fs.readdirSync(join(root, 'content/blobs/sha256'))[0]!;
    assert.notEqual(asNobody(['cat', join(root, 'content/blobs/sha256', blobHex)]).status, 0, 'nor read a blob');
  });

  it('an old world-readable root is tightened on open; layer content keeps its modes', async () => {
    const root = join(dir, 'old');
    const env = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'vfs' };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    // What a root from before the rule (or a careless chmod -R) looks like.
    execFileSync('chmod', ['-R', 'go+rX', root]);
    assert.ok(looseDirs(root).length > 5, 'the setup made the store loose');
    assert.equal(asNobody(['ls', join(root, 'content/blobs/sha256')]).status, 0, 'and readable by others');
    const r = await runCli(['images'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(looseDirs(root), []);
    assert.notEqual(asNobody(['ls', join(root, 'content')]).status, 0);
    const layer = fs.readdirSync(join(root, 'vfs/layers')).find((n) => !n.startsWith('.'))!;
    assert.equal(fs.statSync(join(root, 'vfs/layers', layer, 'root/bin')).mode & 0o777, 0o755, 'image dirs are image content');
  });

  it('a root owned by another user, or a shared sticky dir, is refused', async () => {
    const theirs = join(dir, 'theirs');
    fs.mkdirSync(theirs, { mode: 0o700 });
    fs.chownSync(theirs, 65534, 65534);
    const r = await runCli(['pull', '-q', `oci:${FIXTURE}`], { TSGRAPH_ROOT: theirs });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /owned by uid 65534.*\(TSG_USAGE\)/);
    assert.deepEqual(fs.readdirSync(theirs), [], 'nothing was written into it');
    // Sticky with someone else's entries in it is shared, like /tmp (an empty sticky dir, e.g. a fresh tmpfs, is fine).
    const shared = join(dir, 'shared');
    fs.mkdirSync(shared);
    fs.chmodSync(shared, 0o1777);
    fs.writeFileSync(join(shared, 'someone-elses'), 'x');
    const s = await runCli(['gc'], { TSGRAPH_ROOT: shared });
    assert.equal(s.code, 2, s.stderr);
    assert.match(s.stderr, /sticky/);
    assert.equal(fs.statSync(shared).mode & 0o7777, 0o1777, 'left as it was');
  });
});

describe('defect 10: bounded root creation, signals end the process', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let dir: string;
  let ref: string;
  before(async () => {
    dir = makeTempDir('tsgraph-signal-');
    reg = await startRegistry('plain');
    proxy = await startFaultProxy({ upstream: reg.host });
    // 4 MiB of random bytes: gzip keeps it big, so a throttled download lasts.
    const layer = await makeLayer([{ path: 'big.bin', content: randomBytes(4 << 20) }]);
    const client = new RegistryClient({ insecureRegistries: [reg.host] });
    try {
      await pushImages(client, reg.host, 'slow/img', 'v1', [makeImage({ layers: [layer] })]);
    } finally {
      client.close();
    }
    ref = `127.0.0.1:${proxy.port}/slow/img:v1`;
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    removeDir(dir);
  });

  it('--root under /proc fails at once with a clear error for verbs that create a root; the others create nothing', async () => {
    for (const args of [['pull', `oci:${FIXTURE}`], ['doctor']]) {
      const t0 = Date.now();
      const r = await runCli(['--root', '/proc/nope/deeper', ...args], {}, 10_000);
      assert.ok(Date.now() - t0 < 5000, `${args[0]} returned in bounded time`);
      assert.equal(r.signal, null, `${args[0]} was not killed by the harness timeout`);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /cannot use \/proc\/nope\/deeper as the store root: cannot create \/proc\/nope.*\(TSG_USAGE\)/);
    }
    for (const [args, code] of [[['images', '--json'], 0], [['gc'], 0], [['mount', 'busybox'], 3]] as const) {
      const t0 = Date.now();
      const r = await runCli(['--root', '/proc/nope', ...args], {}, 10_000);
      assert.ok(Date.now() - t0 < 5000, `${args[0]} returned in bounded time`);
      assert.equal(r.code, code, `${args[0]}: ${r.stderr}`);
    }
  });

  async function interruptPull(signal: 'SIGTERM' | 'SIGINT', root: string): Promise<{ code: number | null; ms: number; stderr: string }> {
    proxy.rules.length = 0;
    proxy.rules.push({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'throttle', chunk: 16 * 1024, delayMs: 50 } });
    proxy.log.length = 0;
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', MAIN, 'pull', '--insecure-registry', `127.0.0.1:${proxy.port}`, ref], {
      cwd: REPO_ROOT,
      env: { ...process.env, TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'vfs' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    // Wait (bounded) until the layer download is under way: its progress line is printed.
    for (let i = 0; i < 600 && !/downloading/.test(stderr) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, /downloading/, 'the pull reached the layer download');
    const t0 = Date.now();
    child.kill(signal);
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await closed;
    clearTimeout(killer);
    return { code, ms: Date.now() - t0, stderr };
  }

  it('SIGTERM during a slow pull ends it within 2 s with 143; the next pull completes', async () => {
    const root = join(dir, 'term');
    const r = await interruptPull('SIGTERM', root);
    assert.equal(r.code, 143, r.stderr);
    assert.ok(r.ms < 2000, `ended in ${r.ms} ms`);
    proxy.rules.length = 0;
    const again = await runCli(['pull', '-q', '--insecure-registry', `127.0.0.1:${proxy.port}`, ref], { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'vfs' });
    assert.equal(again.code, 0, again.stderr);
    const check = await runCli(['images', '--json'], { TSGRAPH_ROOT: root });
    assert.equal(parseJsonOutput<unknown[]>(check).length, 1);
  });

  it('SIGTERM ends a verb stuck in a wait that does not take the signal (gc behind a held lock) within 2 s', async () => {
    const root = join(dir, 'stuck');
    const env = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'vfs' };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
    // Hold the gc lock shared, as a long pull would: gc waits for it.
    const held = await acquireLock(join(root, 'locks'), 'gc', { shared: true, timeoutMs: 0 });
    const hooks = join(dir, 'stuck-hooks');
    fs.mkdirSync(hooks);
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'gc'], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...env, TSGRAPH_NOTIFY_AT: 'lock-wait:gc', TSGRAPH_HOOK_DIR: hooks },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      const marker = join(hooks, 'lock-wait_gc.reached');
      for (let i = 0; i < 600 && !fs.existsSync(marker) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(fs.existsSync(marker), 'gc is waiting for the lock');
      const t0 = Date.now();
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await closed;
      clearTimeout(killer);
      assert.equal(code, 143);
      assert.ok(Date.now() - t0 < 2000, `ended in ${Date.now() - t0} ms`);
    } finally {
      held.release();
    }
    const gc = await runCli(['gc'], env);
    assert.equal(gc.code, 0, `the next run works: ${gc.stderr}`);
  });

  it('SIGINT (Ctrl-C) ends a slow pull within 2 s with 130', async () => {
    const r = await interruptPull('SIGINT', join(dir, 'int'));
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.ms < 2000, `ended in ${r.ms} ms`);
  });
});

describe('defect 12: escapes from images, read-only verbs on a missing root', () => {
  let dir: string;
  before(() => {
    dir = makeTempDir('tsgraph-escape-');
  });
  after(() => removeDir(dir));

  it('images and inspect print control and bidi characters from an image escaped; --json keeps the values', async () => {
    const layer = await makeLayer([{ path: 'f', content: 'x' }]);
    const evil = '\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eevil';
    const configJson = {
      created: '2024-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      variant: `v1${evil}`,
      author: evil,
      config: { Cmd: ['sh', '-c', evil], Labels: { note: evil } },
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    };
    const base = makeImage({ layers: [layer] });
    const config = blob(Buffer.from(JSON.stringify(configJson)), MediaType.OciConfig);
    const manifestJson = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
    };
    const manifest = blob(Buffer.from(JSON.stringify(manifestJson)), MediaType.OciManifest);
    const layout = join(dir, 'evil');
    writeOciLayout(layout, [{ tag: 'v1', image: { ...base, config, manifest, platform: { os: 'linux', architecture: 'amd64' } } }]);
    const env = { TSGRAPH_ROOT: join(dir, 'root'), TSGRAPH_DRIVER: 'vfs' };
    const pulled = await runCli(['pull', '-q', '--no-unpack', `oci:${layout}:v1`], env);
    assert.equal(pulled.code, 0, pulled.stderr);
    const name = pulled.stdout.trim();
    const raw = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/;
    const outputs: Array<[string, string[]]> = [
      ['images', ['images']],
      ['inspect', ['inspect', name]],
      ['inspect -f platform', ['inspect', '-f', 'platform', name]],
    ];
    let sawEscaped = false;
    for (const [what, args] of outputs) {
      const r = await runCli(args, env);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, raw, `${what} prints no raw control characters`);
      sawEscaped ||= r.stdout.includes('\\x1b') || r.stdout.includes('\\u001b');
    }
    assert.ok(sawEscaped, 'the escapes are shown, not dropped');
    const j = await runCli(['inspect', name, '--json'], env);
    const parsed = parseJsonOutput<{ config: { author: string; config: { Labels: Record<string, string> } } }>(j);
    assert.equal(parsed.config.author, evil, '--json keeps the exact value');
    assert.equal(parsed.config.config.Labels.note, evil);
    assert.doesNotMatch(j.stdout, raw, 'as JSON escapes, not raw bytes');
  });

  it('images, containers, inspect, gc and the verbs that need an existing image or container create no missing --root', async () => {
    const root = join(dir, 'typo', 'root');
    const images = await runCli(['--root', root, 'images', '--json'], {});
    assert.equal(images.code, 0, images.stderr);
    assert.deepEqual(parseJsonOutput(images), []);
    const ps = await runCli(['--root', root, 'containers'], {});
    assert.equal(ps.code, 0, ps.stderr);
    const inspect = await runCli(['--root', root, 'inspect', 'busybox'], {});
    assert.equal(inspect.code, 3, inspect.stderr);
    assert.match(inspect.stderr, /no store at .*\(TSG_NOT_FOUND\)/);
    const gc = await runCli(['--root', root, 'gc', '--json'], {});
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(parseJsonOutput<{ bytes: number }>(gc).bytes, 0);
    for (const verb of [['diff', 'c'], ['umount', 'c'], ['rm', 'c'], ['rmi', 'busybox'], ['tag', 'busybox', 'x:1'], ['mount', 'busybox'], ['commit', 'c', 'x:1'], ['push', 'busybox'], ['bundle', 'busybox', join(dir, 'b')]]) {
      const r = await runCli(['--root', root, ...verb], {});
      assert.equal(r.code, 3, `${verb[0]}: ${r.stderr}`);
    }
    assert.equal(fs.existsSync(join(dir, 'typo')), false, 'no directory was created');
  });
});

describe('defect 14: temp ingests of killed commits', () => {
  let tmp: Tmpfs;
  let root: string;
  let env: Record<string, string>;
  before(async () => {
    tmp = mountTmpfs('1g');
    root = join(tmp.dir, 'root');
    env = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'overlay' };
    assert.equal((await runCli(['pull', '-q', `oci:${FIXTURE}`], env)).code, 0);
  });
  after(() => {
    spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'rm', 'c1'], { cwd: REPO_ROOT, env: { ...process.env, ...env } });
    unmountBelow(tmp.dir);
    tmp.cleanup();
  });

  const tempIngests = () => fs.readdirSync(join(root, 'content/ingest')).filter((n) => n.startsWith('tmp-'));

  it('SIGKILL mid-commit: gc --dry-run shows the temp ingest with its bytes, gc removes it', async () => {
    const m = await runCli(['mount', 'busybox', '--name', 'c1', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    fs.writeFileSync(join(parseJsonOutput<{ path: string }>(m).path, 'payload'), randomBytes(2 << 20));
    const hooks = join(tmp.dir, 'hooks');
    fs.mkdirSync(hooks);
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'commit', '--compress', 'none', 'c1', 'localhost/killed:v1'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env, TSGRAPH_PAUSE_AT: 'commit:layer-written', TSGRAPH_HOOK_DIR: hooks },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const closed = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_c, s) => resolve(s)));
    const marker = join(hooks, 'commit_layer-written.reached');
    for (let i = 0; i < 1200 && !fs.existsSync(marker) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(fs.existsSync(marker), 'the commit reached the pause with its layer written');
    assert.equal(tempIngests().length, 1, 'the layer sits in a temp ingest');
    child.kill('SIGKILL');
    assert.equal(await closed, 'SIGKILL');

    const dry = parseJsonOutput<{ ingests: Array<{ size: number; temporary: boolean }>; ingestBytes: number }>(await runCli(['gc', '--dry-run', '--json'], env));
    assert.equal(dry.ingests.length, 1, 'dry run shows the dead temp ingest');
    assert.equal(dry.ingests[0]!.temporary, true);
    assert.ok(dry.ingests[0]!.size > 2 << 20, `with its bytes (${dry.ingests[0]!.size})`);
    assert.equal(dry.ingestBytes, dry.ingests[0]!.size);
    assert.equal(tempIngests().length, 1, 'a dry run removes nothing');
    const human = await runCli(['gc', '--dry-run'], env);
    assert.match(human.stdout, /1 abandoned ingest\(s\) \(2\.\d+ MB\)/);

    const gc = parseJsonOutput<{ ingests: unknown[] }>(await runCli(['gc', '--json'], env));
    assert.equal(gc.ingests.length, 1);
    assert.deepEqual(tempIngests(), [], 'gc removed it');
    assert.deepEqual(fs.readdirSync(join(root, 'locks')).filter((n) => n.startsWith('ingest-tmp-')), [], 'and its lock file');
    const ok = await runCli(['commit', 'c1', 'localhost/after:v1'], env);
    assert.equal(ok.code, 0, `the next commit works: ${ok.stderr}`);
  });

  it("a live writer's temp ingest is neither shown nor removed by gc in another process", async () => {
    const content = new ContentStore(root);
    const writer = content.tempWriter();
    try {
      await new Promise<void>((resolve, reject) => writer.write(randomBytes(4096), (err) => (err ? reject(err) : resolve())));
      assert.equal(tempIngests().length, 1);
      const dry = parseJsonOutput<{ ingests: unknown[] }>(await runCli(['gc', '--dry-run', '--json'], env));
      assert.deepEqual(dry.ingests, []);
      const gc = parseJsonOutput<{ ingests: unknown[] }>(await runCli(['gc', '--json'], env));
      assert.deepEqual(gc.ingests, []);
      assert.equal(tempIngests().length, 1, 'still there while its writer lives');
    } finally {
      writer.discard();
    }
    assert.deepEqual(tempIngests(), []);
  });
});
