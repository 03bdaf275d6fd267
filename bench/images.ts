/**
 * The bench's images, built here and cached under /var/cache/tsgraph-bench
 * (env TSGRAPH_BENCH_CACHE) so reruns skip the slow parts:
 *   debian:{gzip,zstd}  4 layers: a debootstrap minbase of bookworm, an "app"
 *                       layer of bigger files, a layer of many small files, and
 *                       a layer that deletes (whiteouts, an opaque dir) and
 *                       replaces some of them;
 *   big:gzip            one synthetic 1 GB layer (128 MB with --quick).
 * Written as an OCI layout, then pushed with skopeo to the bench's registry.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { log, makeTmpfs, run, sh } from './util.js';

export const CACHE = process.env.TSGRAPH_BENCH_CACHE ?? '/var/cache/tsgraph-bench';
const FORMAT = 'v1';

export interface LayerInfo {
  digest: string;
  size: number;
  diffId: string;
  tarSize: number;
  mediaType: string;
}
export interface ImageInfo {
  /** repository:tag in the registry (no host). */
  name: string;
  compression: 'gzip' | 'zstd';
  layers: LayerInfo[];
  entries: number;
}
export interface BenchImages {
  layout: string;
  debian: Record<'gzip' | 'zstd', ImageInfo>;
  big: ImageInfo;
}

/** The Debian mirror apt uses here (debootstrap needs the same one to be reachable). */
function aptMirror(): string {
  const files = ['/etc/apt/sources.list', ...safeList('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f))];
  for (const f of files) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    // deb822 (URIs: ...) or one-line (deb URL suite ...), skipping the security archive.
    for (const m of text.matchAll(/^(?:URIs:\s*(\S+)|deb\s+(?:\[[^\]]*\]\s+)?(\S+))/gm)) {
      const url = m[1] ?? m[2]!;
      if (!/security/.test(url)) return url;
    }
  }
  return 'http://deb.debian.org/debian';
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** bookworm minbase as a tar (no /dev, /proc, /sys, /run, /tmp contents), built once. */
async function minbaseTar(scratchParent: string): Promise<string> {
  const out = join(CACHE, 'bookworm-minbase.tar');
  if (fs.existsSync(out)) return out;
  const mirror = aptMirror();
  log(`debootstrap --variant=minbase bookworm from ${mirror} (once; cached in ${out})`);
  const t = makeTmpfs(scratchParent, '2g');
  try {
    await run(['debootstrap', '--variant=minbase', 'bookworm', join(t.dir, 'rootfs'), mirror], { timeoutMs: 900_000 });
    await run(['tar', '-C', join(t.dir, 'rootfs'), '--numeric-owner', '--exclude=./dev/*', '--exclude=./proc/*', '--exclude=./sys/*',
      '--exclude=./run/*', '--exclude=./tmp/*', '--exclude=./var/cache/apt/archives/*.deb', '-cf', `${out}.part`, '.']);
    fs.renameSync(`${out}.part`, out);
  } finally {
    await t.dispose();
  }
  return out;
}

/** Bytes that compress about 2:1 like real binaries/text do: random runs between text runs. */
export function semiCompressible(n: number): Buffer {
  const b = Buffer.alloc(n);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet 0123456789\n');
  let off = 0;
  while (off < n) {
    const r = Math.min(n - off, 256);
    randomBytes(r).copy(b, off);
    off += r;
    for (let k = 0; k < 3 && off < n; k++) off += text.copy(b, off, 0, Math.min(text.length, n - off));
  }
  return b;
}

function writeFile(root: string, rel: string, data: Buffer | string): void {
  const p = join(root, rel);
  fs.mkdirSync(join(p, '..'), { recursive: true });
  fs.writeFileSync(p, data);
}

interface Sizes {
  appFiles: number;
  appFileBytes: number;
  smallFiles: number;
  bigBytes: number;
}
const FULL: Sizes = { appFiles: 24, appFileBytes: 1_500_000, smallFiles: 19_000, bigBytes: 1 << 30 };
const QUICK: Sizes = { appFiles: 8, appFileBytes: 1_000_000, smallFiles: 3_000, bigBytes: 128 << 20 };

/** Fills the three synthetic layer trees of the debian image. */
function makeTrees(dir: string, s: Sizes): string[] {
  const app = join(dir, 'app');
  const small = join(dir, 'small');
  const del = join(dir, 'delete');
  for (let i = 0; i < s.appFiles; i++) writeFile(app, `opt/app/lib/lib${i}.so`, semiCompressible(s.appFileBytes + (i % 7) * 100_000));
  writeFile(app, 'opt/app/bin/app', semiCompressible(4_000_000));
  for (let i = 0; i < s.smallFiles; i++) {
    const size = 300 + ((i * 7919) % 8_000);
    writeFile(small, `srv/data/m${i % 40}/p${i % 13}/f${i}.txt`, semiCompressible(size));
  }
  // Deletes and replaces: every 10th small file whited out, every 10th+1 rewritten,
  // one dir made opaque (its old contents hidden, a new file in it), minbase docs removed.
  for (let i = 0; i < s.smallFiles; i += 10) {
    writeFile(del, `srv/data/m${i % 40}/p${i % 13}/.wh.f${i}.txt`, '');
    writeFile(del, `srv/data/m${(i + 1) % 40}/p${(i + 1) % 13}/f${i + 1}.txt`, semiCompressible(2048));
  }
  writeFile(del, 'srv/data/m0/p0/.wh..wh..opq', '');
  writeFile(del, 'srv/data/m0/p0/replaced.txt', 'new\n');
  writeFile(del, 'usr/share/.wh.doc', '');
  writeFile(del, 'opt/app/lib/lib0.so', semiCompressible(s.appFileBytes));
  return [app, small, del];
}

const TAR_FLAGS = ['--numeric-owner', '--owner=0', '--group=0', '--mtime=@1700000000', '--sort=name'];

function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (let n = fs.readSync(fd, buf); n > 0; n = fs.readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return `sha256:${h.digest('hex')}`;
}

/** Compresses tar → blob in the layout; returns the layer descriptor. */
async function addLayer(layout: string, tarPath: string, compression: 'gzip' | 'zstd'): Promise<LayerInfo> {
  const tmp = join(layout, 'blobs', 'sha256', `tmp-${compression}`);
  const cmd = compression === 'gzip' ? `pigz -6 -n -c` : `zstd -3 -T0 -q -c`;
  await sh(`${cmd} < '${tarPath}' > '${tmp}'`, { timeoutMs: 900_000 });
  const digest = sha256File(tmp);
  fs.renameSync(tmp, join(layout, 'blobs', 'sha256', digest.slice(7)));
  return {
    digest,
    size: fs.statSync(join(layout, 'blobs', 'sha256', digest.slice(7))).size,
    diffId: sha256File(tarPath),
    tarSize: fs.statSync(tarPath).size,
    mediaType: `application/vnd.oci.image.layer.v1.tar+${compression}`,
  };
}

function putJson(layout: string, obj: unknown): { digest: string; size: number } {
  const bytes = Buffer.from(JSON.stringify(obj));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  fs.writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

/** Config + manifest for `layers`; returns the manifest descriptor for index.json. */
function addImage(layout: string, tag: string, layers: LayerInfo[]): object {
  const config = putJson(layout, {
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['bash'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  });
  const manifest = putJson(layout, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  });
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...manifest,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  };
}

async function countEntries(tars: string[]): Promise<number> {
  let n = 0;
  for (const t of tars) n += Number((await sh(`tar -tf '${t}' | wc -l`)).stdout.trim());
  return n;
}

/** Builds (or finds in the cache) the OCI layout with every bench image. */
export async function buildImages(quick: boolean, scratchParent: string): Promise<BenchImages> {
  const dir = join(CACHE, `images-${quick ? 'quick' : 'full'}-${FORMAT}`);
  const metaPath = join(dir, 'meta.json');
  if (fs.existsSync(metaPath)) {
    log(`images: cached in ${dir}`);
    return JSON.parse(fs.readFileSync(metaPath, 'utf8')) as BenchImages;
  }
  fs.mkdirSync(CACHE, { recursive: true });
  const base = await minbaseTar(scratchParent);
  fs.rmSync(dir, { recursive: true, force: true });
  const layout = join(dir, 'layout');
  fs.mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const sizes = quick ? QUICK : FULL;
  const t = makeTmpfs(scratchParent, quick ? '2g' : '6g');
  try {
    log('images: writing the synthetic layer trees');
    const trees = makeTrees(t.dir, sizes);
    const tars = [base];
    for (const tree of trees) {
      const out = `${tree}.tar`;
      await run(['tar', ...TAR_FLAGS, '-C', tree, '-cf', out, '.']);
      fs.rmSync(tree, { recursive: true, force: true });
      tars.push(out);
    }
    const entries = await countEntries(tars);
    const index: object[] = [];
    const debian = {} as Record<'gzip' | 'zstd', ImageInfo>;
    for (const c of ['gzip', 'zstd'] as const) {
      log(`images: compressing debian:${c}`);
      const layers: LayerInfo[] = [];
      for (const tar of tars) layers.push(await addLayer(layout, tar, c));
      index.push(addImage(layout, `debian-${c}`, layers));
      debian[c] = { name: `bench/debian:${c}`, compression: c, layers, entries };
    }
    for (const tar of tars.slice(1)) fs.rmSync(tar);
    log(`images: writing the ${sizes.bigBytes >> 20} MB layer`);
    const bigTree = join(t.dir, 'big');
    const per = 16 << 20;
    for (let i = 0; i * per < sizes.bigBytes; i++) writeFile(bigTree, `data/blob${i}.bin`, semiCompressible(Math.min(per, sizes.bigBytes - i * per)));
    await run(['tar', ...TAR_FLAGS, '-C', bigTree, '-cf', `${bigTree}.tar`, '.']);
    fs.rmSync(bigTree, { recursive: true, force: true });
    const bigLayer = await addLayer(layout, `${bigTree}.tar`, 'gzip');
    index.push(addImage(layout, 'big-gzip', [bigLayer]));
    const big: ImageInfo = { name: 'bench/big:gzip', compression: 'gzip', layers: [bigLayer], entries: await countEntries([`${bigTree}.tar`]) };
    fs.writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    fs.writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index }));
    const meta: BenchImages = { layout, debian, big };
    fs.writeFileSync(metaPath, JSON.stringify(meta, null, 2));
    return meta;
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    await t.dispose();
  }
}

/** Pushes every image of the layout to the registry at `host` with skopeo. */
export async function pushImages(images: BenchImages, host: string, policyDir: string): Promise<void> {
  const policy = join(policyDir, 'policy.json');
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const pairs: Array<[string, string]> = [
    ['debian-gzip', images.debian.gzip.name],
    ['debian-zstd', images.debian.zstd.name],
    ['big-gzip', images.big.name],
  ];
  for (const [tag, name] of pairs) {
    await run(['skopeo', '--policy', policy, 'copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false',
      `oci:${images.layout}:${tag}`, `docker://${host}/${name}`], { timeoutMs: 600_000 });
  }
}

export function describe(img: ImageInfo): string {
  const mb = (n: number) => (n / 1e6).toFixed(0);
  const size = img.layers.reduce((a, l) => a + l.size, 0);
  const tar = img.layers.reduce((a, l) => a + l.tarSize, 0);
  return `${img.name}: ${img.layers.length} layers, ${mb(size)} MB ${img.compression}, ${mb(tar)} MB of tar, ${img.entries} entries`;
}
