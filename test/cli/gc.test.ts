/**
 * Acceptance 5: rm / rmi / gc in several orders. Whatever an image or a
 * container needs survives (and still mounts); everything else goes;
 * `gc --dry-run` changes nothing.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { ContentStore } from '../../src/content/store.js';
import { sha256, sha256Hex } from '../../src/digest.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');

interface State {
  blobs: string[];
  layers: string[];
  driverLayers: string[];
  images: string[];
}

describe('rm, rmi and gc keep what is needed and remove the rest', () => {
  const tmp = suiteTmpfs('1g');

  let n = 0;
  async function setup() {
    const root = join(tmp.dir, `root-${++n}`);
    const env = { TSGRAPH_ROOT: root, TSGRAPH_DRIVER: 'overlay' };
    const cli = async (...args: string[]) => runCli(args, env);
    const ok = async (...args: string[]) => {
      const r = await cli(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const state = (): State => {
      const ls = (p: string) => (fs.existsSync(p) ? fs.readdirSync(p).filter((x) => !x.startsWith('.')).sort() : []);
      return {
        blobs: ls(join(root, 'content/blobs/sha256')),
        layers: ls(join(root, 'meta/layers')),
        driverLayers: ls(join(root, 'overlay/layers')),
        images: ls(join(root, 'meta/images')),
      };
    };
    /** Every image still mounts and shows its files. */
    const checkImagesMount = async () => {
      const images = parseJsonOutput<Array<{ name: string }>>(await ok('images', '--json'));
      for (const img of images) {
        const m = parseJsonOutput<{ path: string; name: string }>(await ok('mount', img.name, '--json'));
        assert.ok(fs.existsSync(join(m.path, 'bin/busybox')), `${img.name} mounts with its files`);
        await ok('rm', m.name);
      }
    };
    await ok('pull', '-q', `oci:${FIXTURE}`);
    const m = parseJsonOutput<{ path: string }>(await ok('mount', 'busybox', '--name', 'ca', '--json'));
    fs.writeFileSync(join(m.path, 'committed'), 'b');
    await ok('commit', 'ca', 'localhost/b:v1');
    return { cli, ok, state, checkImagesMount };
  }

  it('rm, then rmi the base, then gc: the base layer stays for the committed image', async () => {
    const { ok, state, checkImagesMount } = await setup();
    const before = state();
    await ok('rm', 'ca');
    await ok('rmi', 'busybox');
    const gc = parseJsonOutput<{ blobs: unknown[]; layers: unknown[]; bytes: number }>(await ok('gc', '--json'));
    const after = state();
    assert.equal(gc.blobs.length, 2, "busybox's manifest and config went");
    assert.equal(after.blobs.length, before.blobs.length - 2);
    assert.deepEqual(after.layers, before.layers, 'both layer records are needed by localhost/b:v1');
    assert.equal(gc.layers.length, 0);
    assert.deepEqual(after.driverLayers, before.driverLayers.filter((l) => !l.startsWith('c-')));
    await checkImagesMount();
    await ok('rmi', 'localhost/b:v1');
    await ok('gc');
    assert.deepEqual(state(), { blobs: [], layers: [], driverLayers: [], images: [] });
  });

  it('rmi is refused while a container uses the image; with --force the container keeps its base until rm', async () => {
    const { cli, ok, state, checkImagesMount } = await setup();
    const refused = await cli('rmi', 'busybox');
    assert.equal(refused.code, 9);
    assert.match(refused.stderr, /used by container\(s\) ca .*\(TSG_IN_USE\)/);
    await ok('rmi', '--force', 'busybox');
    const before = state();
    await ok('gc');
    assert.deepEqual(state(), before, 'the container still needs its base manifest, config and layers');
    await ok('commit', 'ca', 'localhost/c:v1'); // possible only with those
    await ok('rm', 'ca');
    await ok('gc');
    const after = state();
    assert.equal(after.images.length, 2);
    await checkImagesMount();
    await ok('rmi', 'localhost/b:v1', 'localhost/c:v1');
    await ok('gc');
    assert.deepEqual(state(), { blobs: [], layers: [], driverLayers: [], images: [] });
  });

  it('tag adds a name for the same content; inspect shows record, manifest and config; rmi of one name keeps the other', async () => {
    const { ok, state } = await setup();
    await ok('rm', 'ca');
    const t = await ok('tag', 'busybox', 'localhost/other:v1');
    assert.equal(t.stdout, 'localhost/other:v1\n');
    const blobs = state().blobs;
    const info = parseJsonOutput<{ kind: string; name: string; manifestDigest: string; config: { rootfs: { diff_ids: string[] } }; manifest: { layers: unknown[] } }>(
      await ok('inspect', 'localhost/other:v1', '--json'),
    );
    assert.equal(info.kind, 'image');
    assert.equal(info.config.rootfs.diff_ids.length, 1);
    assert.equal(info.manifest.layers.length, 1);
    const digest = await ok('inspect', 'busybox', '--format', 'manifestDigest');
    assert.equal(digest.stdout.trim(), info.manifestDigest, 'both names point at one manifest');
    await ok('rmi', 'busybox');
    await ok('gc');
    assert.deepEqual(state().blobs, blobs, 'the other name still needs every blob');
    const m = parseJsonOutput<{ name: string }>(await ok('mount', 'localhost/other:v1', '--json'));
    const c = parseJsonOutput<{ kind: string; name: string }>(await ok('inspect', m.name, '--json'));
    assert.equal(c.kind, 'container');
    await ok('rm', m.name);
  });

  it('gc removes partial downloads abandoned for a day, keeps recent ones', async () => {
    const { ok } = await setup();
    const root = join(tmp.dir, `root-${n}`);
    const content = new ContentStore(root);
    for (const [ref, daysOld] of [['old', 2], ['recent', 0]] as const) {
      const w = await content.writer(ref, { digest: sha256(ref), size: 1000 });
      w.write(Buffer.alloc(100));
      w.close();
      const when = new Date(Date.now() - daysOld * 86_400_000);
      const data = join(root, 'content/ingest', sha256Hex(ref), 'data');
      fs.utimesSync(data, when, when);
    }
    const r = parseJsonOutput<{ ingests: Array<{ ref: string }> }>(await ok('gc', '--json'));
    assert.deepEqual(r.ingests.map((i) => i.ref), ['old']);
    assert.deepEqual(content.ingests().map((i) => i.ref), ['recent']);
  });

  it('gc --dry-run reports but changes nothing', async () => {
    const { ok, state } = await setup();
    await ok('rm', 'ca');
    await ok('rmi', 'busybox', 'localhost/b:v1');
    const before = state();
    const dry = parseJsonOutput<{ dryRun: boolean; blobs: unknown[]; layers: unknown[]; bytes: number }>(await ok('gc', '--dry-run', '--json'));
    assert.equal(dry.dryRun, true);
    assert.ok(dry.blobs.length >= 5 && dry.layers.length === 2 && dry.bytes > 0);
    assert.deepEqual(state(), before);
    const real = await ok('gc');
    assert.match(real.stdout, /removed 2 layer\(s\) and \d+ blob\(s\), .* reclaimed/);
    assert.deepEqual(state(), { blobs: [], layers: [], driverLayers: [], images: [] });
  });
});
