/**
 * Issue 11: `save` / `load` / `export` against independent tools.
 *  - what tsgraph saves (docker-archive, oci-archive), skopeo reads (and
 *    `podman load` where podman is installed);
 *  - what skopeo (and podman) write, tsgraph loads, and the image mounts with
 *    the right content;
 *  - binary never goes to a terminal; stdin and stdout work when piped.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { type BuiltImage, makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type Sandbox, makeSandbox, storedIngests } from '../helpers/sandbox.js';
import { skopeo } from '../helpers/skopeo.js';
import { mountPoints, mountTmpfs } from '../helpers/tmpfs.js';

const MAIN = join(REPO_ROOT, 'src', 'cli', 'main.ts');

/** Entry names and contents of a tar file. */
async function readTar(file: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  fs.createReadStream(file).pipe(extract);
  await done;
  return out;
}

/** Runs the CLI with stdout going to `file` (a pipe the test reads) and stdin from `input`. */
function runPiped(args: string[], env: Record<string, string>, opts: { stdinFile?: string; stdoutFile?: string }): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    if (opts.stdoutFile) child.stdout.pipe(fs.createWriteStream(opts.stdoutFile));
    else child.stdout.on('data', (d) => (stdout += d));
    if (opts.stdinFile) fs.createReadStream(opts.stdinFile).pipe(child.stdin);
    else child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

/** Runs the CLI on a pseudo-terminal (script(1)): stdout is a TTY. */
function runOnTty(args: string[], env: Record<string, string>): { code: number | null; output: string } {
  const cmd = [process.execPath, '--import', 'tsx', MAIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'latin1', timeout: 60_000 });
  return { code: r.status, output: r.stdout };
}

const hasPodman = spawnSync('podman', ['--version']).status === 0;

describe('image archives: save, load, export', () => {
  let sb: Sandbox;
  let env: Record<string, string>;
  let app: BuiltImage;
  let tool: BuiltImage;
  // Only this file's mounts: other suites may mount elsewhere meanwhile.
  const ours = () => mountPoints().filter((m) => sb && m.startsWith(sb.dir));

  before(async () => {
    sb = makeSandbox();
    env = sb.env;
    // Two images sharing a base layer; layers gzip, zstd and uncompressed.
    const base = await makeLayer([{ path: 'etc/', type: 'directory' }, { path: 'etc/os-release', content: 'ID=tsgraph-test\n' }], 'gzip');
    const appLayer = await makeLayer([{ path: 'app/', type: 'directory' }, { path: 'app/hello.txt', content: 'hello from the app layer\n' }, { path: 'app/link', type: 'symlink', linkname: 'hello.txt' }], 'none');
    const toolLayer = await makeLayer([{ path: 'tool', content: 'tool bytes\n', mode: 0o755 }], 'zstd');
    app = makeImage({ layers: [base, appLayer] });
    tool = makeImage({ layers: [base, toolLayer] });
    const layout = join(sb.dir, 'src');
    writeOciLayout(layout, [{ tag: 'app', image: app }, { tag: 'tool', image: tool }]);
    for (const tag of ['app', 'tool']) {
      const r = await runCli(['pull', `oci:${layout}:${tag}`], env);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const [from, to] of [['localhost/src:app', 'example.com/team/app:1'], ['localhost/src:tool', 'tool:2']]) {
      const r = await runCli(['tag', from!, to!], env);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(() => {
    const left = ours();
    sb?.cleanup();
    assert.deepEqual(left, [], 'no mount left behind');
  });

  /** Loads `archive` into a fresh root; mounts `name` and returns the files asked for. */
  async function loadAndRead(archive: string, rootName: string, name: string, files: string[]): Promise<{ loaded: Array<{ name: string }>; content: string[] }> {
    const root = sb.newRoot(rootName);
    const e = { ...env, TSGRAPH_ROOT: root };
    const r = await runCli(['--json', 'load', '-i', archive], e);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = parseJsonOutput<{ images: Array<{ name: string }> }>(r);
    const m = await runCli(['mount', '--name', 'c', name], e);
    assert.equal(m.code, 0, m.stderr);
    try {
      const dir = m.stdout.trim();
      return { loaded: out.images, content: files.map((f) => fs.readFileSync(join(dir, f), 'utf8')) };
    } finally {
      const rm = await runCli(['rm', 'c'], e);
      assert.equal(rm.code, 0, rm.stderr);
      assert.deepEqual(storedIngests(root), [], 'no temp ingest left');
    }
  }

  it('save (docker-archive, the default) writes each shared blob once; skopeo reads every image', async () => {
    const file = join(sb.dir, 'two.tar');
    const r = await runCli(['--json', 'save', 'example.com/team/app:1', 'tool:2', '-o', file], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseJsonOutput<{ format: string }>(r).format, 'docker-archive');
    const entries = await readTar(file);
    const manifest = JSON.parse(entries.get('manifest.json')!.toString()) as Array<{ RepoTags: string[]; Layers: string[] }>;
    assert.deepEqual(manifest.map((m) => m.RepoTags), [['example.com/team/app:1'], ['docker.io/library/tool:2']]);
    // The base layer is in both images and in the archive once, uncompressed, named by its diffId.
    assert.equal(manifest[0]!.Layers[0], manifest[1]!.Layers[0]);
    assert.equal([...entries.keys()].filter((n) => n.endsWith('.tar')).length, 3);
    for (const [i, name] of [[0, 'example.com/team/app:1'], [1, 'docker.io/library/tool:2']] as const) {
      const config = JSON.parse(await skopeo(sb.dir, ['inspect', '--config', `docker-archive:${file}:${name}`])) as { rootfs: { diff_ids: string[] } };
      assert.deepEqual(config.rootfs.diff_ids, [app, tool][i]!.layers.map((l) => l.diffId));
      await skopeo(sb.dir, ['copy', `docker-archive:${file}:${name}`, `oci:${join(sb.dir, `skopeo-from-docker-${i}`)}:x`]);
    }
  });

  it('save --format oci-archive keeps manifests as stored; skopeo reads it by name', async () => {
    const file = join(sb.dir, 'two-oci.tar');
    const r = await runCli(['save', '--format', 'oci-archive', 'example.com/team/app:1', 'tool:2', '-o', file], env);
    assert.equal(r.code, 0, r.stderr);
    const inspect = JSON.parse(await skopeo(sb.dir, ['inspect', `oci-archive:${file}:example.com/team/app:1`])) as { Digest: string };
    assert.equal(inspect.Digest, app.manifest.digest);
    await skopeo(sb.dir, ['copy', `oci-archive:${file}:docker.io/library/tool:2`, `oci:${join(sb.dir, 'skopeo-from-oci')}:x`]);
    const index = JSON.parse(fs.readFileSync(join(sb.dir, 'skopeo-from-oci', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]!.digest, tool.manifest.digest);
  });

  it('podman load reads what we save (both formats)', async (t) => {
    if (!hasPodman) {
      t.skip('podman is not installed');
      return;
    }
    const storage = ['--root', join(sb.dir, 'podman-root'), '--runroot', join(sb.dir, 'podman-run'), '--storage-driver', 'vfs'];
    for (const format of ['docker-archive', 'oci-archive']) {
      const file = join(sb.dir, `podman-${format}.tar`);
      const r = await runCli(['save', '--format', format, 'example.com/team/app:1', '-o', file], env);
      assert.equal(r.code, 0, r.stderr);
      const load = spawnSync('podman', [...storage, 'load', '-i', file], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(load.status, 0, load.stderr);
      assert.match(load.stdout, /example\.com\/team\/app:1/);
    }
    const images = spawnSync('podman', [...storage, 'images', '--format', '{{.Repository}}:{{.Tag}}'], { encoding: 'utf8' });
    assert.match(images.stdout, /example\.com\/team\/app:1/);
    spawnSync('podman', [...storage, 'system', 'reset', '-f'], { encoding: 'utf8', timeout: 120_000 });
  });

  it('what skopeo writes as docker-archive, we load; the image mounts with its content', async () => {
    const layout = join(sb.dir, 'src');
    const file = join(sb.dir, 'skopeo-docker.tar');
    await skopeo(sb.dir, ['copy', `oci:${layout}:app`, `docker-archive:${file}:foo/bar:1`]);
    const r = await loadAndRead(file, 'from-skopeo-docker', 'foo/bar:1', ['app/hello.txt', 'etc/os-release', 'app/link']);
    assert.deepEqual(r.loaded.map((i) => i.name), ['docker.io/foo/bar:1']);
    assert.deepEqual(r.content, ['hello from the app layer\n', 'ID=tsgraph-test\n', 'hello from the app layer\n']);
  });

  it('what skopeo writes as oci-archive, we load; the image mounts with its content', async () => {
    const layout = join(sb.dir, 'src');
    const file = join(sb.dir, 'skopeo-oci.tar');
    await skopeo(sb.dir, ['copy', `oci:${layout}:tool`, `oci-archive:${file}:reg.example:5000/tools/t:3`]);
    const r = await loadAndRead(file, 'from-skopeo-oci', 'reg.example:5000/tools/t:3', ['tool', 'etc/os-release']);
    assert.deepEqual(r.loaded.map((i) => i.name), ['reg.example:5000/tools/t:3']);
    assert.deepEqual(r.content, ['tool bytes\n', 'ID=tsgraph-test\n']);
  });

  it('what podman saves (legacy layer.tar layout included), we load', async (t) => {
    if (!hasPodman) {
      t.skip('podman is not installed');
      return;
    }
    const storage = ['--root', join(sb.dir, 'podman-root2'), '--runroot', join(sb.dir, 'podman-run2'), '--storage-driver', 'vfs'];
    const ours = join(sb.dir, 'to-podman.tar');
    assert.equal((await runCli(['save', 'tool:2', '-o', ours], env)).code, 0);
    assert.equal(spawnSync('podman', [...storage, 'load', '-i', ours], { timeout: 120_000 }).status, 0);
    try {
      for (const format of ['docker-archive', 'oci-archive']) {
        const file = join(sb.dir, `from-podman-${format}.tar`);
        const s = spawnSync('podman', [...storage, 'save', '--format', format, '-o', file, 'docker.io/library/tool:2'], { encoding: 'utf8', timeout: 120_000 });
        assert.equal(s.status, 0, s.stderr);
        const r = await loadAndRead(file, `from-podman-${format}`, 'tool:2', ['tool']);
        assert.deepEqual(r.loaded.map((i) => i.name), ['docker.io/library/tool:2']);
        assert.deepEqual(r.content, ['tool bytes\n']);
      }
    } finally {
      spawnSync('podman', [...storage, 'system', 'reset', '-f'], { timeout: 120_000 });
    }
  });

  it('our own round trip through pipes: save to stdout | load from stdin, same image digests', async () => {
    for (const format of ['docker-archive', 'oci-archive']) {
      const file = join(sb.dir, `piped-${format}.tar`);
      const s = await runPiped(['save', '--format', format, 'example.com/team/app:1'], env, { stdoutFile: file });
      assert.equal(s.code, 0, s.stderr);
      const root = sb.newRoot(`piped-${format}`);
      const l = await runPiped(['--json', 'load'], { ...env, TSGRAPH_ROOT: root }, { stdinFile: file });
      assert.equal(l.code, 0, l.stderr);
      const out = JSON.parse(l.stdout) as { format: string; images: Array<{ name: string; manifestDigest: string; configDigest: string }> };
      assert.equal(out.format, format);
      assert.equal(out.images[0]!.name, 'example.com/team/app:1');
      assert.equal(out.images[0]!.configDigest, app.config.digest);
      // The OCI archive keeps the manifest; a docker archive has none, so one is made (the same every time).
      if (format === 'oci-archive') assert.equal(out.images[0]!.manifestDigest, app.manifest.digest);
      const again = await runPiped(['--json', 'load'], { ...env, TSGRAPH_ROOT: root }, { stdinFile: file });
      assert.equal((JSON.parse(again.stdout) as typeof out).images[0]!.manifestDigest, out.images[0]!.manifestDigest);
    }
  });

  it('save, load and export refuse to write binary to a terminal or read one; nothing is written', () => {
    for (const args of [['save', 'tool:2'], ['save', 'tool:2', '-o', '-'], ['export', 'nosuch'], ['load']]) {
      const r = runOnTty(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.output}`);
      assert.match(r.output, /^tsgraph: (refusing to write .* to a terminal|no archive to load).*\(TSG_USAGE\)\r?\n$/);
    }
  });

  it('save of an unknown image, or to a missing directory, fails on one line and leaves no file', async () => {
    const file = join(sb.dir, 'never.tar');
    const r = await runCli(['save', 'tool:2', 'nosuch:1', '-o', file], env);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^tsgraph: .*nosuch.* \(TSG_NOT_FOUND\)\n$/);
    assert.deepEqual(fs.readdirSync(sb.dir).filter((f) => f.includes('never')), []);
    const missing = await runCli(['--json', 'save', 'tool:2', '-o', join(sb.dir, 'no', 'dir.tar')], env);
    assert.equal(missing.code, 3);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(missing).error.code, 'TSG_NOT_FOUND');
  });

  it('save into a pipe closed early (EPIPE) or onto a full disk: one line each, no partial file', async () => {
    // 1 MiB of zeros: a tiny gzip blob, a 1 MiB tar in a docker archive (more than a pipe or the tmpfs holds).
    const bigLayout = join(sb.dir, 'big-layout');
    writeOciLayout(bigLayout, [{ tag: 'big', image: makeImage({ layers: [await makeLayer([{ path: 'zeros', content: Buffer.alloc(1 << 20) }], 'gzip')] }) }]);
    assert.equal((await runCli(['pull', `oci:${bigLayout}:big`], env)).code, 0);
    const r = spawnSync('bash', ['-c', `'${process.execPath}' --import tsx '${MAIN}' save localhost/big-layout:big | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.stdout.trim(), '2', r.stderr);
    assert.match(r.stderr, /^tsgraph: cannot write stdout: the reader closed the pipe \(TSG_USAGE\)\n$/);
    const small = mountTmpfs('256k');
    try {
      const file = join(small.dir, 'x.tar');
      const full = await runCli(['save', 'localhost/big-layout:big', '-o', file], env);
      assert.equal(full.code, 10, full.stderr);
      assert.match(full.stderr, /^tsgraph: cannot write .*x\.tar: no space left on the device \(TSG_NO_SPACE\)\n$/);
      assert.deepEqual(fs.readdirSync(small.dir), [], 'no partial archive, no temp file');
    } finally {
      small.cleanup();
    }
  });

  it('export writes the merged tree (image + changes) as a flat tar, to a file or a pipe', async () => {
    const m = await runCli(['mount', '--name', 'exp', 'example.com/team/app:1'], env);
    assert.equal(m.code, 0, m.stderr);
    try {
      const dir = m.stdout.trim();
      fs.writeFileSync(join(dir, 'app', 'new.txt'), 'written in the container\n');
      fs.rmSync(join(dir, 'etc', 'os-release'));
      const file = join(sb.dir, 'exp.tar');
      const r = await runCli(['--json', 'export', 'exp', '-o', file], env);
      assert.equal(r.code, 0, r.stderr);
      const entries = await readTar(file);
      assert.equal(parseJsonOutput<{ bytes: number }>(r).bytes, fs.statSync(file).size);
      assert.equal(entries.get('app/new.txt')?.toString(), 'written in the container\n');
      assert.equal(entries.get('app/hello.txt')?.toString(), 'hello from the app layer\n');
      assert.ok(!entries.has('etc/os-release'), 'a deleted file is not exported');
      assert.ok(![...entries.keys()].some((n) => n.includes('.wh.')), 'no whiteouts in a flat export');
      const piped = join(sb.dir, 'exp-piped.tar');
      const p = await runPiped(['export', 'exp'], env, { stdoutFile: piped });
      assert.equal(p.code, 0, p.stderr);
      assert.deepEqual([...(await readTar(piped)).keys()].sort(), [...entries.keys()].sort());
      assert.deepEqual(ours().filter((m) => !m.startsWith(dir)), [], 'the read-only mount of the export is released');
    } finally {
      assert.equal((await runCli(['rm', 'exp'], env)).code, 0);
    }
  });

  it('export into a pipe its reader closes early (EPIPE): one line, and the export mount is released', async () => {
    const m = await runCli(['mount', '--name', 'epipe', 'tool:2'], env);
    assert.equal(m.code, 0, m.stderr);
    const dir = m.stdout.trim();
    try {
      fs.writeFileSync(join(dir, 'big'), Buffer.alloc(4 << 20, 1)); // more than a pipe holds
      assert.equal((await runCli(['umount', 'epipe'], env)).code, 0);
      const r = spawnSync('bash', ['-c', `'${process.execPath}' --import tsx '${MAIN}' export epipe | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"`], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
      assert.match(r.stderr, /^tsgraph: cannot write stdout: the reader closed the pipe \(TSG_USAGE\)\n$/);
      assert.equal(r.stdout.trim(), '2');
      assert.deepEqual(ours().filter((x) => x.startsWith(dir)), [], 'no export mount left');
    } finally {
      await runCli(['rm', 'epipe'], env);
    }
  });
});
