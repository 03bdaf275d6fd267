/**
 * `tsgraph bench copy-up`: builds a synthetic image (N files of S bytes),
 * and for each driver asked for, in its own fresh root: pulls it, mounts a
 * container, and times first writes (copy-up) and second writes. Drivers run
 * side by side in one process, so the ratios compare like with like.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { sha256 } from '../digest.js';
import { MediaType } from '../oci/media-types.js';
import { Store } from '../store/store.js';
import { type TimingSummary, summarize, timeFirstWrites } from './first-write.js';

export interface CopyUpOptions {
  /** Work dir; each driver gets `<dir>/<driver>` as its root. */
  dir: string;
  drivers: string[];
  files: number;
  fileSize: number;
}

export interface CopyUpResult {
  driver: string;
  first: TimingSummary;
  second: TimingSummary;
}

/** Writes a one-layer OCI layout with `files` files of `size` random bytes. */
async function syntheticLayout(dir: string, files: number, size: number): Promise<void> {
  const pack = tar.pack();
  const raw: Buffer[] = [];
  const gz: Buffer[] = [];
  const gzip = createGzip({ level: 1 });
  pack.on('data', (c: unknown) => raw.push(c as Buffer));
  const zipped = pipeline(pack as unknown as Readable, gzip, async function* (src) {
    for await (const c of src) gz.push(c as Buffer);
  });
  for (let i = 0; i < files; i++) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: `data/d${i % 64}/f${i}`, mode: 0o644, mtime: new Date(0) }, randomBytes(size), (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await zipped;
  const layer = Buffer.concat(gz);
  const diffId = sha256(Buffer.concat(raw));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] }, config: { Cmd: ['sh'] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MediaType.OciLayerGzip, digest: sha256(layer), size: layer.length }],
    }),
  );
  fs.mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer, config, manifest]) fs.writeFileSync(join(dir, 'blobs', 'sha256', sha256(b).slice(7)), b);
  fs.writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.OciManifest, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }),
  );
}

export async function benchCopyUp(options: CopyUpOptions): Promise<CopyUpResult[]> {
  const layout = join(options.dir, 'layout');
  await syntheticLayout(layout, options.files, options.fileSize);
  const paths = Array.from({ length: options.files }, (_, i) => `data/d${i % 64}/f${i}`);
  const results: CopyUpResult[] = [];
  for (const driver of options.drivers) {
    const store = await Store.open({ root: join(options.dir, driver), driver });
    try {
      const { image } = await store.pull(`oci:${layout}:bench`);
      const { path } = await store.mount(image.name, { name: 'copy-up' });
      try {
        const timings = timeFirstWrites(path, paths);
        results.push({ driver, first: summarize(timings.map((t) => t.firstUs)), second: summarize(timings.map((t) => t.secondUs)) });
      } finally {
        await store.removeContainer('copy-up');
      }
    } finally {
      store.close();
    }
  }
  return results;
}
