/**
 * What docker/podman users type to look at and clean up the store (issue
 * 11): images with a name/pattern, --filter, --format and an IMAGE ID
 * column; IDs that resolve when an image has several names (mount, inspect,
 * rmi refusing and rmi -f); ps -a/-s; rm going on past missing names;
 * system df; history; inspect -f templates. vfs in a sandbox; every
 * container is removed at the end.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { type BuiltImage, blob, makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type Sandbox, makeSandbox } from '../helpers/sandbox.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');
const LONG_STEP = '/bin/sh -c apk add --no-cache ca-certificates curl jq && rm -rf /var/cache/apk/*';

/** `image` with its config changed by `patch` (a new config blob, and a manifest pointing at it). */
function withConfig(image: BuiltImage, patch: (config: Record<string, unknown>) => void): BuiltImage {
  const config = JSON.parse(image.config.bytes.toString()) as Record<string, unknown>;
  patch(config);
  const configBlob = blob(Buffer.from(JSON.stringify(config)), image.config.mediaType);
  const manifest = JSON.parse(image.manifest.bytes.toString()) as Record<string, unknown>;
  manifest.config = { mediaType: configBlob.mediaType, digest: configBlob.digest, size: configBlob.size };
  return { ...image, config: configBlob, manifest: blob(Buffer.from(JSON.stringify(manifest)), image.manifest.mediaType) };
}

describe('listing and cleaning up the store, as docker users type it', () => {
  let sb: Sandbox;
  let env: Record<string, string>;
  const cli = (...args: string[]) => runCli(args, env);
  const ok = async (...args: string[]) => {
    const r = await cli(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return r;
  };
  let busyboxId: string; // config digest of the fixture (three names below)
  let oldId: string;

  before(async () => {
    sb = makeSandbox();
    env = { ...sb.env, TSGRAPH_DRIVER: 'vfs' };
    const layer = await makeLayer([{ path: 'etc/app.conf', content: 'x'.repeat(5000) }]);
    const base = makeImage({ layers: [layer] });
    const old = withConfig(base, (c) => {
      c.created = '2020-01-01T00:00:00Z';
      (c.config as Record<string, unknown>).Labels = { 'a.b': 'c d', plain: 'v', evil: 'x\x1b]0;owned\x07\u202ey' };
      c.history = [
        { created: '2020-01-01T00:00:00Z', created_by: LONG_STEP, comment: 'made by hand' },
        { created: '2020-01-01T00:00:01Z', created_by: '/bin/sh -c #(nop)  CMD ["sh"]', empty_layer: true },
      ];
    });
    const fresh = withConfig(base, (c) => {
      c.created = '2030-01-01T00:00:00Z';
    });
    const dir = join(sb.dir, 'app');
    writeOciLayout(dir, [
      { tag: 'old', image: old },
      { tag: 'new', image: fresh },
    ]);
    await ok('pull', '-q', `oci:${FIXTURE}`);
    await ok('pull', '-q', `oci:${dir}:old`);
    await ok('pull', '-q', `oci:${dir}:new`);
    await ok('tag', 'busybox', 'localhost/busybox:v1');
    await ok('tag', 'busybox', 'localhost/other:2');
    const list = parseJsonOutput<Array<{ name: string; configDigest: string }>>(await ok('images', '--json'));
    busyboxId = list.find((i) => i.name === 'localhost/busybox:latest')!.configDigest;
    oldId = list.find((i) => i.name === 'localhost/app:old')!.configDigest;
  });

  after(async () => {
    if (!sb) return;
    for (const c of parseJsonOutput<Array<{ name: string }>>(await cli('ps', '--json'))) await cli('rm', c.name);
    sb.cleanup();
  });

  describe('images', () => {
    it('shows IMAGE ID (config digest, 12 hex), CREATED from the config, and the unpacked size', async () => {
      const r = await ok('images');
      const [header, ...rows] = r.stdout.trimEnd().split('\n');
      assert.match(header!, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
      const old = rows.find((l) => l.startsWith('localhost/app ') && / old /.test(l))!;
      assert.ok(old, r.stdout);
      assert.ok(old.includes(` ${oldId.slice(7, 19)} `), old);
      assert.match(old, / \d+ years ago /);
      const fresh = rows.find((l) => / new /.test(l))!;
      assert.match(fresh, / Less than a second ago | \d+ \w+ ago /, 'a future time is not negative');
      const json = parseJsonOutput<Array<{ name: string; id: string; size: number; unpackedSize: number; compressedSize: number }>>(await ok('images', '--json'));
      const j = json.find((i) => i.name === 'localhost/app:old')!;
      assert.equal(j.id, oldId);
      assert.equal(j.compressedSize, j.size);
      assert.ok(j.unpackedSize >= 5000, `unpacked ${j.unpackedSize}`);
      assert.ok(old.includes(j.unpackedSize >= 1000 ? 'kB' : 'B'));
      const whole = await ok('images', '--no-trunc', '--digests');
      assert.ok(whole.stdout.includes(oldId), whole.stdout);
      assert.match(whole.stdout.split('\n')[0]!, /DIGEST\s+IMAGE ID/);
    });

    it('REPO[:TAG] lists the images it names or matches', async () => {
      const names = async (...args: string[]) => (await ok('images', '-q', ...args)).stdout.trim().split('\n').filter(Boolean);
      assert.deepEqual(await names('busybox'), ['localhost/busybox:latest', 'localhost/busybox:v1']);
      assert.deepEqual(await names('localhost/busybox:v1'), ['localhost/busybox:v1']);
      assert.deepEqual(await names('localhost/app:n*'), ['localhost/app:new']);
      assert.deepEqual(await names('nosuch'), []);
    });

    it('--filter: reference (globs, several match any), dangling, before/since (ANDed across keys)', async () => {
      const names = async (...args: string[]) => (await ok('images', '-q', ...args)).stdout.trim().split('\n').filter(Boolean);
      assert.deepEqual(await names('--filter', 'reference=*/other:*'), ['localhost/other:2']);
      assert.deepEqual(await names('-f', 'reference=*/other:*', '-f', 'reference=*/app:old'), ['localhost/app:old', 'localhost/other:2']);
      assert.deepEqual(await names('--filter', 'before=localhost/app:new', '--filter', 'since=localhost/app:old'), ['localhost/busybox:latest', 'localhost/busybox:v1', 'localhost/other:2']);
      assert.deepEqual(await names('--filter', 'since=localhost/busybox:latest'), ['localhost/app:new']);
      assert.deepEqual(await names('--filter', 'before=busybox', '--filter', 'reference=*/app:*'), ['localhost/app:old']);
      assert.deepEqual(await names('--filter', 'dangling=true'), []);
      assert.equal((await names('--filter', 'dangling=false')).length, 5);
      for (const bad of ['dangling=maybe', 'label=x', 'reference', 'reference=app:[']) {
        const r = await cli('images', '--filter', bad, '--json');
        assert.equal(r.code, 2, `${bad}: ${r.stdout}`);
        assert.equal(parseJsonOutput<{ error: { code: string } }>(r).error.code, 'TSG_USAGE');
      }
      const missing = await cli('images', '--filter', 'since=nosuch');
      assert.equal(missing.code, 3, missing.stderr);
      assert.match(missing.stderr, /^tsgraph: image nosuch is not in the store.*\(TSG_NOT_FOUND\)\n$/);
    });

    it('--format: fields, table, json; an unknown field is TSG_USAGE (exit 2) even with nothing to list', async () => {
      const r = await ok('images', 'localhost/app:old', '--format', '{{.ID}} {{.Repository}}:{{.Tag}} {{.CreatedAt}}');
      assert.equal(r.stdout, `${oldId.slice(7, 19)} localhost/app:old 2020-01-01 00:00:00 +0000 UTC\n`);
      const t = await ok('images', 'busybox', '--format', 'table {{.ID}}\\t{{.Tag}}\\t{{.Size}}');
      const lines = t.stdout.trimEnd().split('\n');
      assert.match(lines[0]!, /^IMAGE ID\s{3,}TAG\s{3,}SIZE$/);
      assert.equal(lines.length, 3);
      const j = await ok('images', 'localhost/other', '--format', '{{json .}}');
      assert.equal((JSON.parse(j.stdout) as { ID: string }).ID, busyboxId.slice(7, 19));
      for (const args of [['--format', '{{.Nope}}'], ['--format', '{{.ID'], ['nosuch', '--format', '{{range .}}{{end}}']]) {
        const bad = await cli('images', ...args);
        assert.equal(bad.code, 2, bad.stdout);
        assert.match(bad.stderr, /^tsgraph: format: .*\(TSG_USAGE\)\n$/);
      }
      const empty = await runCli(['images', '--format', '{{.Nope}}'], { ...env, TSGRAPH_ROOT: join(sb.dir, 'no-root') });
      assert.equal(empty.code, 2);
    });
  });

  describe('an ID names one image content, whatever its names', () => {
    it('mount and inspect take an ID prefix of an image with three names (was: matches 3 images)', async () => {
      for (const prefix of [busyboxId.slice(7, 19), busyboxId.slice(7, 12), busyboxId]) {
        const i = parseJsonOutput<{ configDigest: string }>(await ok('inspect', prefix, '--json'));
        assert.equal(i.configDigest, busyboxId);
      }
      const m = parseJsonOutput<{ name: string; path: string }>(await ok('mount', busyboxId.slice(7, 19), '--name', 'byid', '--json'));
      assert.ok(fs.existsSync(join(m.path, 'bin', 'busybox')));
      await ok('rm', 'byid');
    });

    it('rmi ID of several names is refused naming them; rmi -f ID removes every name', async () => {
      await ok('tag', 'localhost/app:old', 'localhost/app:copy');
      const r = await cli('rmi', oldId.slice(7, 19));
      assert.equal(r.code, 9, r.stderr);
      assert.match(r.stderr, /^tsgraph: image [0-9a-f]{12} is referenced by 2 names \(localhost\/app:copy, localhost\/app:old\).*rmi -f.*\(TSG_IN_USE\)\n$/);
      const json = parseJsonOutput<{ error: { code: string; data: { names: string[] } } }>(await cli('rmi', oldId.slice(7, 19), '--json'));
      assert.deepEqual(json.error.data.names, ['localhost/app:copy', 'localhost/app:old']);
      assert.equal((await ok('images', '-q', 'localhost/app')).stdout, 'localhost/app:copy\nlocalhost/app:new\nlocalhost/app:old\n');
      const f = await ok('rmi', '-f', oldId.slice(7, 19));
      assert.equal(f.stdout, 'Untagged: localhost/app:copy\nUntagged: localhost/app:old\n');
      assert.equal((await ok('images', '-q', 'localhost/app')).stdout, 'localhost/app:new\n');
      // Put it back for the tests below.
      await ok('pull', '-q', `oci:${join(sb.dir, 'app')}:old`);
    });
  });

  describe('containers', () => {
    it('ps lists every container, -a too; -s sizes the changes (and virtual with the image)', async () => {
      const m = parseJsonOutput<{ path: string }>(await ok('mount', 'localhost/app:old', '--name', 'sized', '--json'));
      fs.writeFileSync(join(m.path, 'new-file'), Buffer.alloc(3000, 1));
      await ok('mount', 'localhost/app:new', '--name', 'idle');
      await ok('umount', 'idle');
      for (const args of [['ps'], ['ps', '-a']]) {
        const out = (await ok(...args)).stdout;
        assert.match(out, /^idle\s.*\sno\s*$/m);
        assert.match(out, /^sized\s.*\srw\s/m);
      }
      const s = await ok('ps', '-a', '-s');
      assert.match(s.stdout.split('\n')[0]!, /\sSIZE$/);
      assert.match(s.stdout, /^sized\s.*\s3\.00 kB \(virtual \d/m);
      const j = parseJsonOutput<Array<{ name: string; size: number; virtualSize: number }>>(await ok('ps', '-s', '--json'));
      const sized = j.find((c) => c.name === 'sized')!;
      assert.equal(sized.size, 3000);
      assert.ok(sized.virtualSize >= 8000, String(sized.virtualSize));
      assert.equal((await ok('ps', '--format', '{{.Names}}:{{.Mounted}}')).stdout, 'idle:no\nsized:rw\n');
      assert.equal((await cli('ps', '--format', '{{.Nope}}')).code, 2);
    });

    it('rm A B C goes on past missing names, one line each, exit non-zero; -f is accepted', async () => {
      await ok('mount', 'busybox', '--name', 'r1');
      await ok('mount', 'busybox', '--name', 'r2');
      const r = await cli('rm', 'gone1', 'r1', 'gone2');
      assert.equal(r.code, 3);
      assert.equal(r.stdout, 'r1\n');
      assert.deepEqual(r.stderr.trimEnd().split('\n'), ['tsgraph: no container named gone1 (TSG_NOT_FOUND)', 'tsgraph: no container named gone2 (TSG_NOT_FOUND)']);
      const j = await cli('rm', '-f', 'gone', 'r2', '--json');
      assert.equal(j.code, 3);
      const out = parseJsonOutput<{ removed: string[]; errors: Array<{ name: string; error: { code: string } }> }>(j);
      assert.deepEqual(out.removed, ['r2']);
      assert.deepEqual(out.errors.map((e) => [e.name, e.error.code]), [['gone', 'TSG_NOT_FOUND']]);
      const names = parseJsonOutput<Array<{ name: string }>>(await ok('ps', '--json')).map((c) => c.name);
      assert.ok(!names.includes('r1') && !names.includes('r2'));
    });
  });

  describe('system df', () => {
    it('counts images, containers, layers and blobs, with what gc and rmi would reclaim', async () => {
      const u = parseJsonOutput<{
        images: { count: number; active: number; reclaimableBytes: number };
        containers: { count: number; mounted: number; bytes: number };
        layers: { count: number };
        content: { blobs: number };
        reclaimableBytes: number;
      }>(await ok('system', 'df', '--json'));
      assert.equal(u.images.count, 5);
      assert.equal(u.images.active, 2, 'app:old and app:new have containers');
      assert.equal(u.containers.count, 2);
      assert.equal(u.containers.mounted, 1);
      assert.equal(u.containers.bytes, 3000);
      assert.ok(u.images.reclaimableBytes > 0, 'the busybox names are unused');
      assert.ok(u.layers.count >= 2 && u.content.blobs >= 6);
      const h = await ok('system', 'df');
      assert.match(h.stdout, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE\n/);
      assert.match(h.stdout, /^Images\s+5\s+2\s/m);
      assert.match(h.stdout, /^Containers\s+2\s+1\s+3\.00 kB/m);
      const v = await ok('system', 'df', '--verbose');
      assert.match(v.stdout, /Images space usage:[\s\S]*SHARED SIZE[\s\S]*Containers space usage:[\s\S]*^sized\s/m);
      const vj = parseJsonOutput<{ verbose: { images: Array<{ name: string; sharedBytes: number }> } }>(await ok('system', 'df', '--verbose', '--json'));
      // app:old and app:new stack the same layer: shared.
      assert.ok(vj.verbose.images.find((i) => i.name === 'localhost/app:old')!.sharedBytes >= 5000);
      assert.equal((await cli('system', 'nosuch')).code, 2);
      const none = await runCli(['system', 'df', '--json'], { ...env, TSGRAPH_ROOT: join(sb.dir, 'no-root') });
      assert.equal(parseJsonOutput<{ images: { count: number } }>(none).images.count, 0);
      assert.ok(!fs.existsSync(join(sb.dir, 'no-root')), 'no store made');
    });
  });

  describe('history', () => {
    it('newest step first: ID on top, <missing> below, sizes, comments, truncation', async () => {
      const r = await ok('history', 'localhost/app:old');
      const [header, top, below] = r.stdout.trimEnd().split('\n');
      assert.match(header!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
      assert.ok(top!.startsWith(`${oldId.slice(7, 19)} `), top);
      assert.match(top!, /CMD \["sh"\]\s+0 B$/);
      assert.ok(below!.startsWith('<missing> '), below);
      assert.match(below!, /apk add --no-cache ca-\S*…\s+\d/);
      assert.match(below!, /made by hand$/);
      const full = await ok('history', '--no-trunc', oldId.slice(7, 12));
      assert.ok(full.stdout.includes(LONG_STEP) && full.stdout.includes(oldId), full.stdout);
      const j = parseJsonOutput<{ id: string; history: Array<{ createdBy: string; emptyLayer: boolean; layer?: { unpackedBytes: number } }> }>(await ok('history', 'localhost/app:old', '--json'));
      assert.equal(j.id, oldId);
      assert.deepEqual(j.history.map((h) => h.emptyLayer), [true, false]);
      assert.ok(j.history[1]!.layer!.unpackedBytes >= 5000);
      const missing = await cli('history', 'nosuch', '--json');
      assert.equal(missing.code, 3);
      assert.equal(parseJsonOutput<{ error: { code: string } }>(missing).error.code, 'TSG_NOT_FOUND');
    });
  });

  describe('inspect -f', () => {
    it('nested paths, index with dotted keys, json, docker names; unknown fields fail', async () => {
      const f = async (format: string, target = 'localhost/app:old') => (await ok('inspect', '-f', format, target)).stdout;
      assert.equal(await f('{{.Config.Env}}'), '[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]\n');
      assert.equal(await f('{{index .Config.Labels "a.b"}}'), 'c d\n');
      assert.equal(await f('{{index .Config.Cmd 0}} {{.Os}}/{{.Architecture}} {{.Id}}'), `sh linux/amd64 ${oldId}\n`);
      assert.deepEqual((JSON.parse(await f('{{json .Config}}')) as { Labels: Record<string, string> }).Labels.plain, 'v');
      // Image content printed through a template is escaped as every human output is; the format's own tab stays.
      assert.equal(await f('{{index .Config.Labels "evil"}}\\t{{json .Config.Labels.evil}}'), 'x\\x1b]0;owned\\x07\\u202ey\t"x\\u001b]0;owned\\u0007\\u202ey"\n');
      assert.deepEqual(JSON.parse(await f('{{json .RepoTags}}', busyboxId.slice(7, 19))), ['localhost/busybox:latest', 'localhost/busybox:v1', 'localhost/other:2']);
      assert.equal(await f('{{.config.created}}'), '2020-01-01T00:00:00Z\n', 'the JSON shown works too');
      assert.equal(await f('manifestDigest'), `${parseJsonOutput<{ manifestDigest: string }>(await ok('inspect', 'localhost/app:old', '--json')).manifestDigest}\n`);
      assert.equal(await f('{{.Name}} {{.Mounted}}', 'sized'), 'sized true\n');
      for (const bad of ['{{.Config.Nope}}', '{{.Nope}}', 'nope', '{{index .Config.Env "x"}}']) {
        const r = await cli('inspect', '-f', bad, 'localhost/app:old');
        assert.equal(r.code, 2, `${bad}: ${r.stdout}`);
        assert.match(r.stderr, /^tsgraph: format: .*\(TSG_USAGE\)\n$/);
        assert.equal(r.stdout, '');
      }
      const j = await cli('inspect', '-f', '{{.Nope}}', 'localhost/app:old', '--json');
      assert.equal(parseJsonOutput<{ error: { code: string } }>(j).error.code, 'TSG_USAGE');
      assert.equal(parseJsonOutput<string>(await ok('inspect', '-f', '{{.Os}}', 'localhost/app:old', '--json')), 'linux');
    });
  });
});
