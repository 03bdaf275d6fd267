#!/usr/bin/env node
/**
 * `npm run prebuild`: makes prebuilds/<platform>-<arch>/, what the npm package
 * ships so that it installs with no compiler (docs/packaging.md):
 *
 *  - tsgraph.<libc>.node — the addon, built by prebuildify (--napi: one
 *    N-API build serves every Node >= 20; --strip; --tag-libc so that a musl
 *    machine does not pick a glibc build). node-gyp-build finds it, at install
 *    (then nothing compiles) and at run time (src/native.ts).
 *  - zstd-napi/ — zstd-napi's runtime (its JS, its N-API binding, its and
 *    zstd's licences). zstd-napi is an optional dependency: its own install
 *    downloads from GitHub or compiles, and where neither works npm drops it;
 *    src/native.ts then loads this copy.
 *
 * prebuildify compiles in a private copy of binding.gyp + native/ under
 * $TMPDIR, not in ./build: a `node-gyp rebuild` here would delete the addon
 * that running tests and other builds use. Nothing is redone while the
 * inputs (hashed into build/prebuild-inputs.json) are unchanged.
 *
 *   node scripts/prebuild.mjs           make them (or say they are up to date)
 *   node scripts/prebuild.mjs --check   exit 1 unless they exist and are up to date (prepack)
 *   node scripts/prebuild.mjs --force   rebuild even when up to date
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PLATFORM = `${process.platform}-${process.arch}`;
const OUT = join(ROOT, 'prebuilds', PLATFORM);
const STAMP = join(ROOT, 'build', 'prebuild-inputs.json');
const require = createRequire(join(ROOT, 'package.json'));

const args = new Set(process.argv.slice(2));

/** Ends the run with `message` (thrown, so that the staging copy is still removed). */
function fail(message) {
  throw Object.assign(new Error(message), { prebuild: true });
}

function zstdNapiDir() {
  try {
    return dirname(require.resolve('zstd-napi/package.json'));
  } catch {
    return undefined;
  }
}

/** Everything a prebuild is made from: change any and it is stale. */
function inputs() {
  const hash = createHash('sha256');
  const files = ['binding.gyp', 'scripts/prebuild.mjs', ...fs.readdirSync(join(ROOT, 'native')).filter((f) => /\.(cc|h)$/.test(f)).sort().map((f) => `native/${f}`)];
  for (const f of files) hash.update(`${f}\0`).update(fs.readFileSync(join(ROOT, f))).update('\0');
  const version = (dir) => (dir ? JSON.parse(fs.readFileSync(join(dir, 'package.json'), 'utf8')).version : null);
  return {
    sources: hash.digest('hex'),
    nodeAddonApi: version(dirname(require.resolve('node-addon-api/package.json'))),
    zstdNapi: version(zstdNapiDir()),
    platform: PLATFORM,
  };
}

/** What is in prebuilds/<platform>/ now, or why it will not do. */
function staleness(want) {
  if (!fs.existsSync(OUT)) return `${OUT} is missing`;
  const entries = fs.readdirSync(OUT);
  if (!entries.some((f) => /^tsgraph\..*node$/.test(f))) return `no tsgraph addon in ${OUT}`;
  if (!fs.existsSync(join(OUT, 'zstd-napi', 'build', 'Release', 'binding.node'))) return `no zstd-napi binding in ${OUT}`;
  let have;
  try {
    have = JSON.parse(fs.readFileSync(STAMP, 'utf8'));
  } catch {
    return `${STAMP} is missing (made with other inputs?)`;
  }
  for (const k of Object.keys(want)) if (have[k] !== want[k]) return `${k} changed since the last prebuild`;
  return undefined;
}

function run(cmd, argv, opts) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${argv.join(' ')} exited with ${r.status ?? r.signal}`);
}

/** node-gyp: npm's own when run from an npm script, else the one beside this node's npm. */
function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  const found = candidates.find((c) => c && fs.existsSync(c));
  return found ?? 'node-gyp';
}

/** Builds the addon with prebuildify in a private copy; returns the .node files it made. */
function buildAddon(stage) {
  fs.copyFileSync(join(ROOT, 'binding.gyp'), join(stage, 'binding.gyp'));
  fs.copyFileSync(join(ROOT, 'package.json'), join(stage, 'package.json')); // prebuildify names the file after the package
  fs.cpSync(join(ROOT, 'native'), join(stage, 'native'), { recursive: true });
  fs.symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules')); // binding.gyp asks node-addon-api for its headers
  const env = { ...process.env, JOBS: String(availableParallelism()) };
  // Offline headers: this node's own (as npm's nodedir), when it has them; node-gyp would otherwise download them.
  const headers = resolve(dirname(process.execPath), '..');
  if (!env.npm_config_nodedir && fs.existsSync(join(headers, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = headers;
  const gyp = nodeGyp();
  // prebuildify spawns node-gyp without a shell: give it a file it can exec.
  const wrapper = join(stage, 'node-gyp');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(gyp)} "$@"\n`, { mode: 0o755 });
  env.PREBUILD_NODE_GYP = gyp.endsWith('.js') ? wrapper : gyp;
  const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
  run(process.execPath, [prebuildify, '--napi', '--strip', '--tag-libc', `--target=node@${process.versions.node}`, `--cache=${join(stage, 'devdir')}`, '--cwd', stage], { env, cwd: stage });
  const made = join(stage, 'prebuilds', PLATFORM);
  return fs.readdirSync(made).filter((f) => f.endsWith('.node')).map((f) => join(made, f));
}

/** Copies zstd-napi's runtime (no sources, no types) into `dest`. */
function copyZstdNapi(dest) {
  const src = zstdNapiDir();
  if (!src) fail('zstd-napi is not installed (did its build fail?): the package would have no zstd for machines where its install fails');
  const binding = join(src, 'build', 'Release', 'binding.node');
  if (!fs.existsSync(binding)) fail(`${binding} is missing: rebuild zstd-napi (npm rebuild zstd-napi)`);
  const pkg = JSON.parse(fs.readFileSync(join(src, 'package.json'), 'utf8'));
  fs.mkdirSync(join(dest, 'dist'), { recursive: true });
  fs.mkdirSync(join(dest, 'build', 'Release'), { recursive: true });
  const manifest = { name: pkg.name, version: pkg.version, description: `${pkg.description} (runtime copy shipped by tsgraph)`, license: pkg.license, main: pkg.main };
  fs.writeFileSync(join(dest, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  for (const f of fs.readdirSync(join(src, 'dist')).filter((f) => f.endsWith('.js'))) fs.copyFileSync(join(src, 'dist', f), join(dest, 'dist', f));
  fs.copyFileSync(join(src, 'binding.js'), join(dest, 'binding.js'));
  fs.copyFileSync(join(src, 'LICENSE'), join(dest, 'LICENSE'));
  fs.copyFileSync(join(src, 'NOTICE'), join(dest, 'NOTICE'));
  fs.copyFileSync(join(src, 'deps', 'zstd', 'LICENSE'), join(dest, 'LICENSE.zstd')); // the binding links zstd itself (BSD)
  fs.copyFileSync(binding, join(dest, 'build', 'Release', 'binding.node'));
  // Symbols are not needed to run (prebuildify strips ours the same way); keep it unstripped if strip is absent.
  spawnSync('strip', ['--strip-all', join(dest, 'build', 'Release', 'binding.node')], { stdio: 'ignore' });
}

function main() {
  for (const a of args) if (!['--check', '--force'].includes(a)) fail(`unknown option ${a}`);
  const want = inputs();
  const why = args.has('--force') ? 'forced' : staleness(want);
  if (!why) {
    console.log(`prebuild: ${join('prebuilds', PLATFORM)} is up to date`);
    return;
  }
  if (args.has('--check')) fail(`${why}; run \`npm run prebuild\` before packing`);

  console.log(`prebuild: ${why}; building ${join('prebuilds', PLATFORM)}`);
  const stage = fs.mkdtempSync(join(tmpdir(), 'tsgraph-prebuild-'));
  const next = join(ROOT, 'prebuilds', `.${PLATFORM}.new`);
  const old = join(ROOT, 'prebuilds', `.${PLATFORM}.old`);
  try {
    const addons = buildAddon(stage);
    if (addons.length === 0) fail('prebuildify made no .node file');
    fs.rmSync(next, { recursive: true, force: true });
    fs.mkdirSync(next, { recursive: true });
    for (const a of addons) fs.copyFileSync(a, join(next, a.slice(a.lastIndexOf('/') + 1)));
    copyZstdNapi(join(next, 'zstd-napi'));
    // Swap the whole directory in, so a reader never sees half of it.
    fs.rmSync(old, { recursive: true, force: true });
    if (fs.existsSync(OUT)) fs.renameSync(OUT, old);
    fs.renameSync(next, OUT);
    fs.rmSync(old, { recursive: true, force: true });
    fs.mkdirSync(dirname(STAMP), { recursive: true });
    fs.writeFileSync(STAMP, JSON.stringify(want, null, 2) + '\n');
    for (const f of fs.readdirSync(OUT)) console.log(`prebuild: ${join('prebuilds', PLATFORM, f)}`);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
    fs.rmSync(next, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  if (!err.prebuild) throw err;
  console.error(`prebuild: ${err.message}`);
  process.exitCode = 1;
}
