/**
 * Issue 11: an archive given to `load` is hostile input, like a registry
 * blob. Each crafted archive below is refused with its TSG_* code on one line
 * (exit code of its category), and the store is exactly as before: no blob,
 * no temp ingest, no layer, no name, nothing for gc to reclaim.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/digest.js';
import { ustarHeader } from '../../src/layer/tar-header.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseJsonOutput, runCli, spawnCli } from '../helpers/cli.js';
import { type BuiltImage, type BuiltLayer, type TarEntry, makeImage, makeIndex, makeLayer, makeTar } from '../helpers/image-builder.js';
import { type Sandbox, makeSandbox, storedBlobs, storedImages, storedIngests } from '../helpers/sandbox.js';

const hex = (d: string) => d.slice('sha256:'.length);

/** docker-archive entries for `image` (its layers as stored: uncompressed tars here). */
function dockerEntries(image: BuiltImage, name = 'hostile/app:1'): TarEntry[] {
  return [
    { path: `${hex(image.config.digest)}.json`, content: image.config.bytes },
    ...image.layers.map((l) => ({ path: `${hex(l.diffId)}.tar`, content: l.bytes })),
    {
      path: 'manifest.json',
      content: JSON.stringify([{ Config: `${hex(image.config.digest)}.json`, RepoTags: [name], Layers: image.layers.map((l) => `${hex(l.diffId)}.tar`) }]),
    },
  ];
}

/** OCI archive entries for `image`, named `name`. */
function ociEntries(image: BuiltImage, name = 'hostile/app:1', manifest = image.manifest): TarEntry[] {
  return [
    { path: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    ...[image.config, ...image.layers, manifest].map((b) => ({ path: `blobs/sha256/${hex(b.digest)}`, content: b.bytes })),
    {
      path: 'index.json',
      content: JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size, annotations: { 'org.opencontainers.image.ref.name': name } }],
      }),
    },
  ];
}

/** A manifest blob over `image`'s config with `layers` as its descriptors. */
function manifestWith(image: BuiltImage, layers: Array<{ mediaType: string; digest: string; size: number }>): BuiltImage['manifest'] {
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: image.config.mediaType, digest: image.config.digest, size: image.config.size },
    layers,
  }));
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType: MediaType.OciManifest };
}

/** A tar whose one entry declares `size` bytes (base-256, as GNU tar writes huge sizes) and holds a few. */
function hugeEntryTar(size: bigint): Buffer {
  const h = ustarHeader('blobs/sha256/huge', '0', 0);
  const field = Buffer.alloc(12);
  field[0] = 0x80;
  let v = size;
  for (let i = 11; i > 0; i--) {
    field[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  field.copy(h, 124);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return Buffer.concat([h, Buffer.alloc(4096, 7)]);
}

describe('load refuses hostile archives and stores nothing', () => {
  let sb: Sandbox;
  let good: BuiltImage;
  let gzipped: BuiltImage;
  let before_: { blobs: string[]; images: string[]; layers: string[] };
  const layersOf = () => fs.readdirSync(join(sb.root, 'meta', 'layers')).sort();

  before(async () => {
    sb = makeSandbox();
    const layer: BuiltLayer = await makeLayer([{ path: 'hello.txt', content: 'hello\n' }], 'none');
    good = makeImage({ layers: [layer] });
    gzipped = makeImage({ layers: [await makeLayer([{ path: 'g.txt', content: 'gzip layer\n' }], 'gzip')] });
    // A store with one image already in it: "nothing stored" is "nothing changed".
    const seed = join(sb.dir, 'seed.tar');
    fs.writeFileSync(seed, await makeTar(dockerEntries(makeImage({ layers: [await makeLayer([{ path: 'seed', content: 'seed\n' }], 'none')] }), 'seed:1')));
    const r = await runCli(['load', '-i', seed], sb.env);
    assert.equal(r.code, 0, r.stderr);
    before_ = { blobs: storedBlobs(sb.root), images: storedImages(sb.root), layers: layersOf() };
  });
  after(() => sb?.cleanup());

  /** Loads `bytes`; expects `code` (one line, its exit code) and an unchanged store. */
  async function refused(name: string, bytes: Buffer, code: string, exit: number, message?: RegExp): Promise<void> {
    const file = join(sb.dir, `${name}.tar`);
    fs.writeFileSync(file, bytes);
    const human = await runCli(['load', '-i', file], sb.env);
    assert.equal(human.code, exit, human.stderr);
    assert.match(human.stderr, new RegExp(`^tsgraph: [^\\n]* \\(${code}\\)\\n$`));
    if (message) assert.match(human.stderr, message);
    const json = await runCli(['--json', 'load', '-i', file], sb.env);
    assert.equal(parseJsonOutput<{ error: { code: string } }>(json).error.code, code);
    assert.deepEqual(storedBlobs(sb.root), before_.blobs, 'no blob stored');
    assert.deepEqual(storedImages(sb.root), before_.images, 'no name registered');
    assert.deepEqual(layersOf(), before_.layers, 'no layer unpacked');
    assert.deepEqual(storedIngests(sb.root), [], 'no temp ingest left');
    const gc = parseJsonOutput<{ blobs: unknown[]; layers: unknown[]; ingests: unknown[] }>(await runCli(['--json', 'gc', '--dry-run'], sb.env));
    assert.deepEqual([gc.blobs, gc.layers, gc.ingests], [[], [], []], 'nothing for gc to reclaim');
  }

  it('the good archives load (the cases below differ from them in one thing)', async () => {
    const root = sb.newRoot('good');
    // Docker 25+: an OCI layout plus manifest.json, whose paths name the blobs.
    const docker25: TarEntry[] = [
      ...ociEntries(good),
      { path: 'manifest.json', content: JSON.stringify([{ Config: `blobs/sha256/${hex(good.config.digest)}`, RepoTags: ['hostile/app:1'], Layers: [`blobs/sha256/${hex(good.layers[0]!.digest)}`] }]) },
    ];
    // Non-ASCII names: manifest.json's UTF-8 paths find the entries.
    const utf8 = dockerEntries(good).map((e) => ({ ...e, path: e.path.endsWith('.tar') ? 'läyer ✓.tar' : e.path }));
    utf8[utf8.length - 1]!.content = JSON.stringify([{ Config: `${hex(good.config.digest)}.json`, RepoTags: ['hostile/app:1'], Layers: ['läyer ✓.tar'] }]);
    // A multi-platform index whose other platform's blobs are not in the archive (docker 25's containerd store does that).
    const arm = makeImage({ layers: gzipped.layers, platform: { os: 'linux', architecture: 'arm64' } });
    const index = makeIndex([arm, good]);
    const multi: TarEntry[] = [
      ...ociEntries(good).filter((e) => e.path !== 'index.json'),
      { path: `blobs/sha256/${hex(index.digest)}`, content: index.bytes },
      { path: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: index.mediaType, digest: index.digest, size: index.size, annotations: { 'io.containerd.image.name': 'docker.io/hostile/app:1' } }] }) },
    ];
    for (const [i, entries] of [dockerEntries(good), ociEntries(good), ociEntries(gzipped), docker25, utf8, multi].entries()) {
      const file = join(sb.dir, `good-${i}.tar`);
      fs.writeFileSync(file, await makeTar(entries));
      const r = await runCli(['load', '-i', file], { ...sb.env, TSGRAPH_ROOT: root });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Loaded image: docker.io/hostile/app:1\n');
    }
  });

  it('an entry name with .. (path traversal)', async () => {
    await refused('dotdot', await makeTar([{ path: '../../evil', content: 'x' }, ...dockerEntries(good)]), 'TSG_UNSAFE_PATH', 8, /"\.\.\/\.\.\/evil"/);
  });

  it('an absolute entry name', async () => {
    await refused('absolute', await makeTar([...dockerEntries(good), { path: '/etc/cron.d/evil', content: 'x' }]), 'TSG_UNSAFE_PATH', 8);
  });

  it('manifest.json naming a layer outside the archive (../)', async () => {
    const entries = dockerEntries(good);
    entries[entries.length - 1] = { path: 'manifest.json', content: JSON.stringify([{ Config: `${hex(good.config.digest)}.json`, RepoTags: ['a:1'], Layers: ['../../etc/passwd'] }]) };
    await refused('manifest-dotdot', await makeTar(entries), 'TSG_UNSAFE_PATH', 8);
  });

  it('an OCI blob whose bytes do not match its name (even one no image uses)', async () => {
    const entries = ociEntries(good);
    const layerEntry = entries.find((e) => e.path === `blobs/sha256/${hex(good.layers[0]!.digest)}`)!;
    layerEntry.content = Buffer.concat([good.layers[0]!.bytes.subarray(0, 600), Buffer.from('tampered')]);
    await refused('tampered', await makeTar(entries), 'TSG_DIGEST_MISMATCH', 5);
    await refused('tampered-unused', await makeTar([...ociEntries(good), { path: `blobs/sha256/${'0'.repeat(64)}`, content: 'not zero' }]), 'TSG_DIGEST_MISMATCH', 5);
  });

  it("a layer that is not its config's diff_id (docker-archive, uncompressed)", async () => {
    const liar = makeImage({ layers: good.layers, diffIds: [sha256('something else')] });
    const entries = dockerEntries(liar);
    await refused('diffid-docker', await makeTar(entries), 'TSG_DIGEST_MISMATCH', 5);
  });

  it("a gzip layer that does not unpack to its config's diff_id (OCI)", async () => {
    await refused('diffid-oci', await makeTar(ociEntries(makeImage({ layers: gzipped.layers, diffIds: [sha256('else')] }))), 'TSG_DIGEST_MISMATCH', 5);
  });

  it('a manifest pointing at a blob the archive does not hold', async () => {
    const missing = { mediaType: MediaType.OciLayer, digest: sha256('absent layer'), size: 12 };
    const image = makeImage({ layers: [good.layers[0]!, good.layers[0]!] });
    const m = manifestWith(image, [good.layers[0]!, missing]);
    // The archive holds the config and the first layer only.
    await refused('missing-oci', await makeTar(ociEntries({ ...image, layers: [good.layers[0]!] }, 'a:1', m)), 'TSG_BLOB_NOT_FOUND', 3);
    const docker = dockerEntries(good).filter((e) => !e.path.endsWith('.tar'));
    await refused('missing-docker', await makeTar(docker), 'TSG_BLOB_NOT_FOUND', 3);
  });

  it('a huge declared size: a tar entry claiming a petabyte, a descriptor claiming one', async () => {
    await refused('huge-entry', hugeEntryTar(1n << 50n), 'TSG_NO_SPACE', 10);
    const m = manifestWith(good, [{ mediaType: MediaType.OciLayer, digest: good.layers[0]!.digest, size: 2 ** 50 }]);
    await refused('huge-descriptor', await makeTar(ociEntries(good, 'a:1', m)), 'TSG_SIZE_MISMATCH', 5);
  });

  it('symlinks and hard links out of the archive (manifest.json → /etc/passwd, a layer → ../..)', async () => {
    const withLink = (path: string, link: TarEntry) => dockerEntries(good).filter((e) => e.path !== path).concat(link);
    await refused('symlink-manifest', await makeTar(withLink('manifest.json', { path: 'manifest.json', type: 'symlink', linkname: '/etc/passwd' })), 'TSG_UNSAFE_PATH', 8);
    const layerPath = `${hex(good.layers[0]!.diffId)}.tar`;
    const entries = dockerEntries(good).filter((e) => e.path !== layerPath);
    entries.splice(1, 0, { path: layerPath, type: 'symlink', linkname: '../../../etc/shadow' });
    await refused('symlink-layer', await makeTar(entries), 'TSG_UNSAFE_PATH', 8);
    await refused('hardlink', await makeTar([{ path: 'x', type: 'link', linkname: '/etc/passwd' }, ...dockerEntries(good)]), 'TSG_UNSAFE_PATH', 8);
  });

  it('a device, or a FIFO, in the archive', async () => {
    await refused('device', await makeTar([...dockerEntries(good), { path: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }]), 'TSG_UNSAFE_PATH', 8);
    await refused('fifo', await makeTar([{ path: 'p', type: 'fifo' }, ...dockerEntries(good)]), 'TSG_UNSAFE_PATH', 8);
  });

  it('a layer link to a file earlier in the archive is an alias (old docker save), and loads', async () => {
    const entries: TarEntry[] = [
      { path: 'a/layer.tar', content: good.layers[0]!.bytes },
      { path: 'b/', type: 'directory' },
      { path: 'b/layer.tar', type: 'symlink', linkname: '../a/layer.tar' },
      { path: `${hex(good.config.digest)}.json`, content: good.config.bytes },
      { path: 'manifest.json', content: JSON.stringify([{ Config: `${hex(good.config.digest)}.json`, RepoTags: ['alias:1'], Layers: ['b/layer.tar'] }]) },
    ];
    const file = join(sb.dir, 'alias.tar');
    fs.writeFileSync(file, await makeTar(entries));
    const r = await runCli(['load', '-i', file], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('alias') });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Loaded image: docker.io/library/alias:1\n');
  });

  it('data after the end-of-archive marker, a cut archive, an entry twice, not a tar at all', async () => {
    const good_ = await makeTar(dockerEntries(good));
    await refused('trailing', Buffer.concat([good_, Buffer.from('hidden after the end')]), 'TSG_INVALID_MANIFEST', 5, /after the end-of-archive/);
    // Cut in the middle of the layer file: the file being spooled drops its temp ingest too.
    await refused('truncated', good_.subarray(0, 2500), 'TSG_INVALID_MANIFEST', 5, /ends in the middle of an entry/);
    await refused('twice', await makeTar([...dockerEntries(good), { path: 'manifest.json', content: '[]' }]), 'TSG_INVALID_MANIFEST', 5, /twice/);
    await refused('garbage', Buffer.alloc(4096, 'not a tar '), 'TSG_INVALID_MANIFEST', 5);
    await refused('docker-1.9', await makeTar([{ path: 'repositories', content: '{"a":{"1":"x"}}' }, { path: 'x/layer.tar', content: good.layers[0]!.bytes }]), 'TSG_UNSUPPORTED', 7, /docker 1\.9/);
    await refused('empty-dir-only', await makeTar([{ path: 'd/', type: 'directory' }]), 'TSG_INVALID_MANIFEST', 5, /neither manifest\.json/);
  });

  it('SIGINT while an archive streams in: exit 130, no temp ingest, blob or name left', async () => {
    const big = await makeLayer([{ path: 'big', content: Buffer.alloc(2 << 20, 3) }], 'none');
    const bytes = await makeTar(dockerEntries(makeImage({ layers: [big] })));
    const root = sb.newRoot('sigint');
    const child = spawnCli(['load'], { ...sb.env, TSGRAPH_ROOT: root }, 'pipe');
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    child.stdin!.write(bytes.subarray(0, 1 << 20)); // half the layer: the load is spooling it
    // Interrupt once the spool has a temp ingest (bounded wait, no sleep-and-hope).
    const ingests = join(root, 'content', 'ingest');
    for (let i = 0; i < 600 && !(fs.existsSync(ingests) && fs.readdirSync(ingests).some((n) => n.startsWith('tmp-'))); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(fs.readdirSync(ingests).some((n) => n.startsWith('tmp-')), 'the load is spooling');
    child.kill('SIGINT');
    assert.equal(await closed, 130, stderr);
    child.stdin!.destroy();
    assert.match(stderr, /\(TSG_ABORTED\)\n$/);
    assert.deepEqual([storedIngests(root), storedBlobs(root), storedImages(root)], [[], [], []]);
  });

  it('a name that carries a digest, or spells an image ID (it would shadow that digest or ID)', async () => {
    const pinned = `hostile/app@${good.manifest.digest}`;
    const seedId = hex(good.config.digest);
    for (const [i, name] of [pinned, `hostile/app:1@${sha256('other')}`, seedId, `sha256:${seedId}`, `me/${seedId}:1`].entries()) {
      await refused(`digest-name-docker-${i}`, await makeTar(dockerEntries(good, name)), 'TSG_INVALID_MANIFEST', 5);
      const oci = ociEntries(good, name);
      // (A bare ref.name is a tag: `localhost/<file>:<64 hex>` is a fine name.)
      if (name !== seedId) await refused(`digest-name-oci-${i}`, await makeTar(oci), 'TSG_INVALID_MANIFEST', 5);
      const containerd = oci.map((e) => (e.path === 'index.json' ? { ...e, content: String(e.content).replace('org.opencontainers.image.ref.name', 'io.containerd.image.name') } : e));
      await refused(`digest-name-containerd-${i}`, await makeTar(containerd), 'TSG_INVALID_MANIFEST', 5);
    }
  });

  it('a layer declared gzip whose bytes are an uncompressed tar', async () => {
    const m = manifestWith(good, [{ mediaType: MediaType.OciLayerGzip, digest: good.layers[0]!.digest, size: good.layers[0]!.size }]);
    await refused('mislabelled', await makeTar(ociEntries(good, 'a:1', m)), 'TSG_INVALID_MANIFEST', 5, /declared gzip/);
  });
});

describe('load is all or nothing across the images of one archive; --platform is a filter only when given', () => {
  let sb: Sandbox;
  let amd: BuiltImage;
  let arm: BuiltImage;
  after(() => sb?.cleanup());

  /** One docker archive holding `images`, each under its name. */
  function twoImages(images: Array<[BuiltImage, string]>): TarEntry[] {
    const files = new Map<string, TarEntry>();
    for (const [image] of images) for (const e of dockerEntries(image).slice(0, -1)) files.set(e.path, e);
    const manifest = images.map(([image, name]) => ({ Config: `${hex(image.config.digest)}.json`, RepoTags: [name], Layers: image.layers.map((l) => `${hex(l.diffId)}.tar`) }));
    return [...files.values(), { path: 'manifest.json', content: JSON.stringify(manifest) }];
  }

  before(async () => {
    sb = makeSandbox();
    amd = makeImage({ layers: [await makeLayer([{ path: 'amd', content: 'amd\n' }], 'none')] });
    arm = makeImage({ layers: [await makeLayer([{ path: 'arm', content: 'arm\n' }], 'none')], platform: { os: 'linux', architecture: 'arm64' } });
  });

  it('a foreign-architecture image loads without --platform (docker/podman load do)', async () => {
    const file = join(sb.dir, 'arm.tar');
    fs.writeFileSync(file, await makeTar(dockerEntries(arm, 'foreign/app:1')));
    const root = sb.newRoot('foreign');
    const r = await runCli(['load', '-i', file], { ...sb.env, TSGRAPH_ROOT: root });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Loaded image: docker.io/foreign/app:1\n');
    // With --platform it is a filter: refused, nothing stored.
    const other = sb.newRoot('foreign-filtered');
    const f = await runCli(['load', '--platform', 'linux/amd64', '-i', file], { ...sb.env, TSGRAPH_ROOT: other });
    assert.match(f.stderr, /\(TSG_PLATFORM_NOT_FOUND\)\n$/);
    assert.deepEqual([storedBlobs(other), storedImages(other)], [[], []]);
  });

  it('a later image refused by --platform leaves no name of an earlier one', async () => {
    const file = join(sb.dir, 'two.tar');
    fs.writeFileSync(file, await makeTar(twoImages([[amd, 'first/app:1'], [arm, 'second/app:1']])));
    const root = sb.newRoot('two');
    const r = await runCli(['load', '--platform', 'linux/amd64', '-i', file], { ...sb.env, TSGRAPH_ROOT: root });
    assert.match(r.stderr, /^tsgraph: [^\n]* \(TSG_PLATFORM_NOT_FOUND\)\n$/);
    assert.deepEqual([storedBlobs(root), storedImages(root), storedIngests(root)], [[], [], []], 'checked before anything was stored');
  });

  it("a later image whose layer the unpack refuses (..) puts back every name the load registered", async () => {
    const evil = makeImage({ layers: [await makeLayer([{ path: '../escape', content: 'x' }], 'none')] });
    const root = sb.newRoot('unpack-refused');
    const env = { ...sb.env, TSGRAPH_ROOT: root };
    // first/app:1 already names arm's content; the load points it at amd's, then fails on the next image.
    const seed = join(sb.dir, 'seed-arm.tar');
    fs.writeFileSync(seed, await makeTar(dockerEntries(arm, 'first/app:1')));
    assert.equal((await runCli(['load', '-i', seed], env)).code, 0);
    const file = join(sb.dir, 'two-evil.tar');
    fs.writeFileSync(file, await makeTar(twoImages([[amd, 'first/app:1'], [amd, 'fresh/app:1'], [evil, 'evil/app:1']])));
    const r = await runCli(['load', '-i', file], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^tsgraph: [^\n]* \(TSG_[A-Z_]+\)\n$/);
    const names = parseJsonOutput<Array<{ name: string; id?: string; configDigest?: string }>>(await runCli(['--json', 'images'], env));
    assert.deepEqual(names.map((i) => i.name), ['docker.io/first/app:1'], 'fresh/app:1 and evil/app:1 are gone');
    const inspect = parseJsonOutput<{ configDigest: string }>(await runCli(['--json', 'inspect', 'first/app:1'], env));
    assert.equal(inspect.configDigest, arm.config.digest, 'first/app:1 names what it named before the load');
  });
});
