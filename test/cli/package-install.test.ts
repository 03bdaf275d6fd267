/**
 * Packaging (issue 10): `npm pack` gives a tarball that installs and runs on
 * a Linux x64 machine with no compiler. The test packs the repository (npm
 * pack runs prepack, which refuses missing or stale prebuilds, and prepare,
 * the tsc build), installs the tarball into a fresh directory with a PATH
 * holding only node, npm and basic tools (no cc, gcc, g++, make, python3),
 * and pulls (a gzip and a zstd layer from an OCI layout), mounts and unmounts
 * through the INSTALLED package's library, in a private mount namespace.
 *
 * The install is `--prefer-offline`: npm takes every dependency from its
 * cache (filled by the `npm ci` that set up this checkout) and asks the
 * registry only for what the cache lacks. zstd-napi's own install is told to
 * build from source (npm_config_build_from_source=zstd-napi): with no
 * compiler it fails as it does on any machine that cannot reach its GitHub
 * download, whatever this machine's network, and npm drops that optional
 * dependency; the zstd layer then proves the copy shipped in prebuilds/.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/cli.js';
import { makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const PLATFORM = `${process.platform}-${process.arch}`;
/** What the installer and the library may run: no compiler, no make, no python. */
const TOOLS = ['sh', 'bash', 'env', 'cat', 'ls', 'mkdir', 'rm', 'cp', 'mv', 'chmod', 'ln', 'uname', 'grep', 'sed', 'tr', 'head', 'tail', 'dirname', 'basename'];
const COMPILERS = ['cc', 'c++', 'gcc', 'g++', 'clang', 'make', 'python3', 'python'];

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 120_000, killSignal: 'SIGKILL', cwd: opts.cwd, env: opts.env ?? process.env });
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The program a runtime would write against the installed package (ESM, `import ... from 'tsgraph'`). */
const PROGRAM = `
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Store } from 'tsgraph';

const [layout, root, mode] = process.argv.slice(2);
const mountinfo = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').map((l) => l.split(' ')[4]);
const out = {};
const store = await Store.open({ root, driver: 'overlay', configDirs: [join(root, '..', 'cfg')] });
try {
  if (mode === 'cycle') {
    const pulled = await store.pull('oci:' + layout + ':both');
    out.name = pulled.name;
    const { path } = await store.mount(pulled.name, { name: 'pkg' });
    out.files = { gz: fs.readFileSync(join(path, 'gz.txt'), 'utf8'), zst: fs.readFileSync(join(path, 'zst.txt'), 'utf8') };
    fs.writeFileSync(join(path, 'written.txt'), 'by the installed package');
    out.mounted = mountinfo().includes(path);
    await store.umount('pkg');
    out.unmounted = !mountinfo().includes(path);
    await store.removeContainer('pkg');
  } else {
    out.gz = (await store.pull('oci:' + layout + ':gz')).name;
    try {
      await store.pull('oci:' + layout + ':both');
      out.zst = 'pulled';
    } catch (err) {
      out.zst = err.code;
      out.message = err.message;
    }
  }
} finally {
  await store.close?.();
}
console.log(JSON.stringify(out));
`;

describe('the npm package', () => {
  let dir: string;
  let tarball: string;
  let files: string[];

  before(() => {
    dir = makeTempDir('tsgraph-package-');
    // Up to date after scripts/test.sh; a lone run of this file makes them (needs the compiler this checkout was built with).
    ok(run(process.execPath, [join(REPO_ROOT, 'scripts', 'prebuild.mjs')], { cwd: REPO_ROOT, timeout: 300_000 }), 'npm run prebuild');
    const packed = ok(run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO_ROOT, timeout: 300_000 }), 'npm pack');
    const info = JSON.parse(packed.slice(packed.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(dir, info[0]!.filename);
    files = info[0]!.files.map((f) => f.path);
  });
  after(() => removeDir(dir));

  it('holds what runs: compiled JS and types, the prebuilds, the fallback build inputs; no tests, fixtures, sources or maps', () => {
    const listed = ok(run('tar', ['-tzf', tarball]), 'tar -t').split('\n').filter(Boolean).map((p) => p.replace(/^package\//, ''));
    assert.deepEqual([...listed].sort(), [...files].sort(), 'npm pack --json lists what the tarball holds');
    for (const must of [
      'package.json',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/main.js',
      'dist/native.js',
      'dist/layer/inflate-worker.js',
      `prebuilds/${PLATFORM}/tsgraph.glibc.node`,
      `prebuilds/${PLATFORM}/zstd-napi/build/Release/binding.node`,
      `prebuilds/${PLATFORM}/zstd-napi/dist/index.js`,
      `prebuilds/${PLATFORM}/zstd-napi/LICENSE`,
      'binding.gyp',
      'native/binding.cc',
    ]) {
      assert.ok(files.includes(must), `${must} is in the package`);
    }
    const unwanted = files.filter(
      (f) => /^(test|fixtures|src|bench|scripts|docs|build|node_modules)\//.test(f) || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(unwanted, []);
    // Every compiled module has its source: no leftovers of deleted sources ship.
    const stale = files.filter((f) => f.startsWith('dist/') && f.endsWith('.js') && !fs.existsSync(join(REPO_ROOT, 'src', f.slice(5, -3) + '.ts')));
    assert.deepEqual(stale, []);
  });

  it('installs with no compiler on PATH and pulls, mounts and unmounts through the installed library', () => {
    const bin = join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, join(bin, 'node'));
    const npmCli = fs.realpathSync(ok(run('sh', ['-c', 'command -v npm']), 'find npm').trim());
    fs.symlinkSync(npmCli, join(bin, 'npm'));
    for (const t of TOOLS) {
      const found = run('sh', ['-c', `command -v ${t}`]).stdout.trim();
      if (found) fs.symlinkSync(found, join(bin, t));
    }
    const env = { HOME: process.env.HOME ?? '/root', PATH: bin, npm_config_build_from_source: 'zstd-napi', npm_config_update_notifier: 'false' };
    const compilers = run('/bin/sh', ['-c', COMPILERS.map((c) => `command -v ${c}`).join('; ')], { env });
    assert.equal(compilers.stdout, '', 'no compiler, make or python on the PATH');

    const install = (app: string, extra: string[] = []) => {
      fs.mkdirSync(app);
      fs.writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'runtime', private: true, type: 'module' }));
      ok(run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', ...extra], { cwd: app, env, timeout: 180_000 }), `npm install ${extra.join(' ')} of the tarball`);
      fs.writeFileSync(join(app, 'runtime.mjs'), PROGRAM);
      return join(app, 'node_modules', 'tsgraph');
    };
    const app = join(dir, 'app');
    const pkg = install(app);
    assert.ok(!fs.existsSync(join(pkg, 'build')), 'nothing was compiled: the prebuild matched');
    assert.ok(!fs.existsSync(join(app, 'node_modules', 'zstd-napi')), "zstd-napi's own install failed without a compiler and npm dropped it");
    // Where install scripts are not allowed (--ignore-scripts, npm's allowScripts), the run-time lookup still finds the prebuilds.
    const noScripts = join(dir, 'app-no-scripts');
    install(noScripts, ['--ignore-scripts']);

    const layout = join(dir, 'pkgimg');
    const runtime = (root: string, mode: string, cwd = app, extraEnv: Record<string, string> = {}) =>
      JSON.parse(
        ok(
          // A private mount namespace: whatever happens, no mount outlives the child.
          run('/usr/bin/unshare', ['-m', '--propagation', 'private', process.execPath, join(cwd, 'runtime.mjs'), layout, root, mode], { cwd, env: { ...env, ...extraEnv, HOME: dir } }),
          `runtime ${mode}`,
        ),
      ) as Record<string, unknown>;
    return (async () => {
      const gz = await makeLayer([{ path: 'gz.txt', content: 'from a gzip layer\n' }], 'gzip');
      const zst = await makeLayer([{ path: 'zst.txt', content: 'from a zstd layer\n' }], 'zstd');
      writeOciLayout(layout, [
        { tag: 'gz', image: makeImage({ layers: [gz] }) },
        { tag: 'both', image: makeImage({ layers: [gz, zst] }) },
      ]);

      const expected = { name: 'localhost/pkgimg:both', files: { gz: 'from a gzip layer\n', zst: 'from a zstd layer\n' }, mounted: true, unmounted: true };
      assert.deepEqual(runtime(join(dir, 'root1'), 'cycle'), expected);
      assert.deepEqual(runtime(join(dir, 'root-no-scripts'), 'cycle', noScripts), expected, 'installed with --ignore-scripts');

      // Without the shipped zstd binding, only zstd layers are refused, with TSG_UNSUPPORTED naming the remedy.
      fs.rmSync(join(pkg, 'prebuilds', PLATFORM, 'zstd-napi'), { recursive: true });
      // Both ways of decompressing: the worker pool (default) and the main thread.
      for (const inflate of ['worker', 'thread']) {
        const nozstd = runtime(join(dir, `root-${inflate}`), 'nozstd', app, { TSGRAPH_INFLATE: inflate });
        assert.equal(nozstd.gz, 'localhost/pkgimg:gz', inflate);
        assert.equal(nozstd.zst, 'TSG_UNSUPPORTED', `${inflate}: ${String(nozstd.message)}`);
        assert.match(String(nozstd.message), /zstd layers need zstd-napi/);
      }

      // Without any addon (TSGRAPH_PREBUILD points node-gyp-build elsewhere): a clear TSG_UNSUPPORTED, no crash.
      const none = run(process.execPath, ['--input-type=module', '-e', "import('tsgraph').then((t) => t.Store.open({ root: process.argv[1] })).then(() => console.log('opened'), (e) => console.log(e.code + ' ' + e.message))", join(dir, 'root3')], {
        cwd: app,
        env: { ...env, HOME: dir, TSGRAPH_PREBUILD: join(dir, 'empty') },
      });
      assert.match(none.stdout, /^TSG_UNSUPPORTED the native addon is neither prebuilt for this machine \(platform=linux/, none.stdout + none.stderr);
    })();
  });
});
