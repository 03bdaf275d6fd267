/**
 * ImageSource over an OCI image layout on disk (`oci:DIR[:TAG]`, like
 * skopeo's transport): `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
 * TAG matches the `org.opencontainers.image.ref.name` annotation; without a
 * TAG the index must name exactly one manifest.
 */
import * as fs from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { type Digest, hexOf, sha256 } from '../digest.js';
import { IntegrityError, NotFoundError, UsageError } from '../errors.js';
import { MediaType } from '../oci/media-types.js';
import { type Descriptor, type Index, indexSchema, parseJson } from '../oci/schemas.js';
import { MAX_MANIFEST_BYTES } from '../registry/client.js';
import type { BlobStream, FetchedManifest, ImageSource } from './source.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export class OciLayoutSource implements ImageSource {
  readonly description: string;
  readonly imageName: string;
  readonly dir: string;

  constructor(dir: string, readonly tag: string | undefined) {
    this.dir = resolve(dir);
    this.description = `oci:${this.dir}${tag ? `:${tag}` : ''}`;
    const repo = basename(this.dir).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+|[._-]+$/g, '') || 'image';
    this.imageName = `localhost/${repo}:${tag ?? 'latest'}`;
  }

  #index(): Index {
    const layoutFile = join(this.dir, 'oci-layout');
    if (!fs.existsSync(layoutFile)) {
      throw new NotFoundError('TSG_NOT_FOUND', `${this.dir} is not an OCI image layout (no oci-layout file)`, { data: { dir: this.dir } });
    }
    return parseJson(indexSchema, fs.readFileSync(join(this.dir, 'index.json')), `${this.dir}/index.json`);
  }

  async resolve(): Promise<FetchedManifest> {
    const index = this.#index();
    let chosen: Descriptor | undefined;
    if (this.tag !== undefined) {
      chosen = index.manifests.find((m) => m.annotations?.[REF_NAME_ANNOTATION] === this.tag);
      if (!chosen) {
        const tags = index.manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION]).filter(Boolean);
        throw new NotFoundError('TSG_TAG_NOT_FOUND', `tag ${this.tag} not found in ${this.dir} (has: ${tags.join(', ') || 'none'})`, {
          data: { dir: this.dir, tag: this.tag },
        });
      }
    } else if (index.manifests.length === 1) {
      chosen = index.manifests[0];
    } else {
      throw new UsageError('TSG_USAGE', `${this.dir} holds ${index.manifests.length} manifests; name one as oci:DIR:TAG`);
    }
    return this.manifest(chosen!);
  }

  async manifest(desc: Descriptor): Promise<FetchedManifest> {
    const path = this.#blobPath(desc.digest);
    const st = fs.statSync(path, { throwIfNoEntry: false });
    if (!st) throw new NotFoundError('TSG_BLOB_NOT_FOUND', `manifest ${desc.digest} is missing from ${this.dir}`);
    if (st.size > MAX_MANIFEST_BYTES) throw new UsageError('TSG_INVALID_MANIFEST', `manifest ${desc.digest} is too large`);
    const bytes = fs.readFileSync(path);
    const digest = sha256(bytes);
    if (digest !== desc.digest || bytes.length !== desc.size) {
      throw new IntegrityError('TSG_DIGEST_MISMATCH', `manifest ${desc.digest} in ${this.dir} does not match its descriptor (got ${digest}, ${bytes.length} bytes)`, {
        data: { expected: desc.digest, actual: digest },
      });
    }
    return { bytes, digest, mediaType: desc.mediaType ?? MediaType.OciManifest };
  }

  async blob(desc: Descriptor, offset: number): Promise<BlobStream> {
    const path = this.#blobPath(desc.digest);
    if (!fs.existsSync(path)) {
      throw new NotFoundError('TSG_BLOB_NOT_FOUND', `blob ${desc.digest} is missing from ${this.dir}`, { data: { digest: desc.digest } });
    }
    return { start: offset, body: fs.createReadStream(path, { start: offset }) };
  }

  #blobPath(digest: Digest): string {
    return join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  close(): void {}
}
