/**
 * ImageSource over an OCI image layout on disk (`oci:DIR[:TAG]`, like
 * skopeo's transport): `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
 * TAG matches the `org.opencontainers.image.ref.name` annotation; without a
 * TAG the index must name exactly one manifest.
 */
import * as fs from 'node:fs';
import { basename, resolve } from 'node:path';
import { type Digest, hexOf, sha256 } from '../digest.js';
import { IntegrityError, NotFoundError, UnsafeError, UsageError } from '../errors.js';
import { SafeNode, SafeTree } from '../util/safe-dir.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor, Index } from '../oci/schemas.js';
import { MAX_MANIFEST_BYTES } from '../registry/client.js';
import type { BlobStream, FetchedManifest, ImageSource } from './source.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** An OCI image layout directory (`oci:DIR[:TAG]`) as an image source; every file read no-follow with a cap. */
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

  /**
   * Opens `rel` below the layout without following any link and checks it is
   * a regular file. A layout may come from anywhere (an unpacked download): a
   * symlink to /dev/zero, a FIFO or a link out of the layout must not make a
   * pull read forever, hang, or read host files. Null when absent.
   */
  #open(rel: string, what: string): SafeNode | null {
    let tree: SafeTree;
    try {
      tree = new SafeTree(this.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError('TSG_NOT_FOUND', `${this.dir} is not an OCI image layout (no such directory)`, { data: { dir: this.dir } });
      throw err;
    }
    let node: SafeNode | null;
    try {
      node = tree.open(rel);
    } finally {
      tree.close();
    }
    if (node && !node.stats.isFile()) {
      node.close();
      throw new UnsafeError('TSG_UNSAFE_PATH', `${what} in ${this.dir} is not a regular file (a link, FIFO or device)`, { data: { dir: this.dir, path: rel } });
    }
    return node;
  }

  /** A small JSON file of the layout, read with a cap. */
  #readSmall(rel: string, what: string): Buffer | undefined {
    const node = this.#open(rel, what);
    if (!node) return undefined;
    try {
      if (node.stats.size > MAX_MANIFEST_BYTES) throw new IntegrityError('TSG_INVALID_MANIFEST', `${what} in ${this.dir} is too large (${node.stats.size} bytes)`);
      return node.readAll(MAX_MANIFEST_BYTES);
    } finally {
      node.close();
    }
  }

  async #index(): Promise<Index> {
    if (!this.#readSmall('oci-layout', 'oci-layout')) {
      throw new NotFoundError('TSG_NOT_FOUND', `${this.dir} is not an OCI image layout (no oci-layout file)`, { data: { dir: this.dir } });
    }
    const bytes = this.#readSmall('index.json', 'index.json');
    if (!bytes) throw new NotFoundError('TSG_NOT_FOUND', `${this.dir} has no index.json`, { data: { dir: this.dir } });
    const { indexSchema, parseJson } = await import('../oci/schemas.js'); // zod on first use only
    return parseJson(indexSchema, bytes, `${this.dir}/index.json`);
  }

  async resolve(): Promise<FetchedManifest> {
    const index = await this.#index();
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
    const bytes = this.#readSmall(this.#blobPath(desc.digest), `manifest ${desc.digest}`);
    if (!bytes) throw new NotFoundError('TSG_BLOB_NOT_FOUND', `manifest ${desc.digest} is missing from ${this.dir}`);
    const digest = sha256(bytes);
    if (digest !== desc.digest || bytes.length !== desc.size) {
      throw new IntegrityError('TSG_DIGEST_MISMATCH', `manifest ${desc.digest} in ${this.dir} does not match its descriptor (got ${digest}, ${bytes.length} bytes)`, {
        data: { expected: desc.digest, actual: digest },
      });
    }
    return { bytes, digest, mediaType: desc.mediaType ?? MediaType.OciManifest };
  }

  async blob(desc: Descriptor, offset: number, signal?: AbortSignal): Promise<BlobStream> {
    const node = this.#open(this.#blobPath(desc.digest), `blob ${desc.digest}`);
    if (!node) {
      throw new NotFoundError('TSG_BLOB_NOT_FOUND', `blob ${desc.digest} is missing from ${this.dir}`, { data: { digest: desc.digest } });
    }
    try {
      // Its own fd on the very inode checked above (the node's O_PATH fd is closed now).
      const fd = fs.openSync(`/proc/self/fd/${node.fd}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      // The caller's abort stops a long local read at once, as it stops a download.
      return { start: offset, body: fs.createReadStream('', { fd, start: offset, ...(signal ? { signal } : {}) }) };
    } finally {
      node.close();
    }
  }

  /** Relative to the layout dir. */
  #blobPath(digest: Digest): string {
    return `blobs/sha256/${hexOf(digest)}`;
  }

  close(): void {}
}
