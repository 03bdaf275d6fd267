/**
 * Builds test images in memory: tar layers from entry lists, compressed with
 * gzip / zstd / nothing, configs, OCI or Docker schema2 manifests, indexes
 * and manifest lists; writes them as OCI layouts or pushes them to a registry.
 * Deterministic: fixed mtimes, no randomness unless the caller adds it.
 */
import * as fs from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import tar from 'tar-stream';
import { compress as zstdCompress } from 'zstd-napi';
import { type Digest, hexOf, sha256 } from '../../src/digest.js';
import { MediaType, type Compression } from '../../src/oci/media-types.js';
import type { RegistryClient } from '../../src/registry/client.js';

export interface TarEntry {
  path: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: string | Buffer;
  mode?: number;
  linkname?: string;
  uid?: number;
  gid?: number;
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

export const FIXED_MTIME = new Date('2024-01-01T00:00:00Z');

export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = e.content === undefined ? undefined : Buffer.from(e.content);
    const header = {
      name: e.path,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? FIXED_MTIME,
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      pax: e.pax,
      size: type === 'file' ? (body?.length ?? 0) : 0,
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry(header, body ?? Buffer.alloc(0), cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function compressBytes(data: Buffer, compression: Compression): Buffer {
  if (compression === 'gzip') return gzipSync(data, { level: 6 });
  if (compression === 'zstd') return zstdCompress(data);
  return data;
}

export interface BuiltBlob {
  digest: Digest;
  size: number;
  mediaType: string;
  bytes: Buffer;
}

export interface BuiltLayer extends BuiltBlob {
  diffId: Digest;
}

export type Style = 'oci' | 'docker';

export function layerMediaType(compression: Compression, style: Style): string {
  if (style === 'docker') {
    if (compression !== 'gzip') throw new Error('docker schema2 layers are gzip only');
    return MediaType.DockerLayerGzip;
  }
  return compression === 'gzip' ? MediaType.OciLayerGzip : compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}

export function blob(bytes: Buffer, mediaType: string): BuiltBlob {
  return { digest: sha256(bytes), size: bytes.length, mediaType, bytes };
}

export async function makeLayer(entries: TarEntry[], compression: Compression = 'gzip', style: Style = 'oci'): Promise<BuiltLayer> {
  const raw = await makeTar(entries);
  return layerFromTar(raw, compression, style);
}

export function layerFromTar(raw: Buffer, compression: Compression = 'gzip', style: Style = 'oci'): BuiltLayer {
  const bytes = compressBytes(raw, compression);
  return { ...blob(bytes, layerMediaType(compression, style)), diffId: sha256(raw) };
}

export interface BuiltImage {
  manifest: BuiltBlob;
  config: BuiltBlob;
  layers: BuiltLayer[];
  platform: { os: string; architecture: string; variant?: string };
}

export interface ImageSpec {
  layers: BuiltLayer[];
  style?: Style;
  platform?: { os: string; architecture: string; variant?: string };
  cmd?: string[];
  env?: string[];
  /** Overrides diff_ids (to build a lying config). */
  diffIds?: Digest[];
}

export function makeImage(spec: ImageSpec): BuiltImage {
  const style = spec.style ?? 'oci';
  const platform = spec.platform ?? { os: 'linux', architecture: 'amd64' };
  const configJson = {
    created: FIXED_MTIME.toISOString(),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: spec.cmd ?? ['sh'] },
    rootfs: { type: 'layers', diff_ids: spec.diffIds ?? spec.layers.map((l) => l.diffId) },
    history: spec.layers.map((_, i) => ({ created: FIXED_MTIME.toISOString(), created_by: `tsgraph test layer ${i}` })),
  };
  const config = blob(Buffer.from(JSON.stringify(configJson)), style === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig);
  const manifestJson = {
    schemaVersion: 2,
    mediaType: style === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: spec.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifest = blob(Buffer.from(JSON.stringify(manifestJson)), manifestJson.mediaType);
  return { manifest, config, layers: spec.layers, platform };
}

export function makeIndex(images: BuiltImage[], style: Style = 'oci'): BuiltBlob {
  const mediaType = style === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList;
  const json = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((img) => ({
      mediaType: img.manifest.mediaType,
      digest: img.manifest.digest,
      size: img.manifest.size,
      platform: img.platform,
    })),
  };
  return blob(Buffer.from(JSON.stringify(json)), mediaType);
}

/** Writes an OCI image layout with each image tagged by `org.opencontainers.image.ref.name`. */
export function writeOciLayout(dir: string, tagged: Array<{ tag: string; image: BuiltImage; index?: BuiltBlob }>): void {
  const blobs = join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (b: BuiltBlob) => {
    const p = join(blobs, hexOf(b.digest));
    if (!fs.existsSync(p)) fs.writeFileSync(p, b.bytes);
  };
  const manifests = [];
  for (const { tag, image, index } of tagged) {
    for (const b of [image.config, ...image.layers, image.manifest]) put(b);
    const top = index ?? image.manifest;
    if (index) put(index);
    manifests.push({
      mediaType: top.mediaType,
      digest: top.digest,
      size: top.size,
      annotations: { 'org.opencontainers.image.ref.name': tag },
    });
  }
  fs.writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }) + '\n');
  fs.writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }, null, 2) + '\n');
}

/** Pushes images (and optionally an index over them) with tsgraph's registry client. */
export async function pushImages(
  client: RegistryClient,
  registry: string,
  repository: string,
  tag: string,
  images: BuiltImage[],
  index?: BuiltBlob,
): Promise<Digest> {
  for (const img of images) {
    for (const b of [img.config, ...img.layers]) await client.pushBlob(registry, repository, b.digest, b.bytes);
    await client.pushManifest(registry, repository, index ? img.manifest.digest : tag, img.manifest.bytes, img.manifest.mediaType);
  }
  if (index) return client.pushManifest(registry, repository, tag, index.bytes, index.mediaType);
  return images[0]!.manifest.digest;
}
