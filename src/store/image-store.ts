/**
 * The image store: names (`docker.io/library/busybox:latest`) pointing at
 * content in the content store. One JSON file per name under `meta/images/`,
 * written atomically, so a crash leaves either the old record or the new one.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { type Digest, isDigest, sha256Hex } from '../digest.js';
import { type RecordScan, isObject, isString, removeRecordFile, scanRecords } from './records.js';
import { NotFoundError } from '../errors.js';
import { writeJsonAtomic } from '../util/fs-atomic.js';

/** One layer of an image record: blob digest and size, media type, diffId. */
export interface LayerRecord {
  /** Digest of the blob as stored (compressed). */
  digest: Digest;
  size: number;
  mediaType: string;
  /** Digest of the uncompressed tar, from the config. */
  diffId: Digest;
}

/** A registered image: its name, digests, platform, layers and sizes. */
export interface ImageRecord {
  /** Full name: `registry/repository:tag` or `registry/repository@digest`. */
  name: string;
  /** What the name resolved to: the index or manifest digest (docker's RepoDigest). */
  digest: Digest;
  /** The platform manifest actually pulled. */
  manifestDigest: Digest;
  manifestMediaType: string;
  configDigest: Digest;
  /** `os/arch[/variant]` from the config. */
  platform: string;
  layers: LayerRecord[];
  /** Sum of layer blob sizes (as transferred). */
  size: number;
  /** Where it came from (`docker.io/library/busybox:latest`, `oci:/dir:tag`). */
  source: string;
  /** The config's `created`, when it has one. */
  created?: string | undefined;
  pulledAt: string;
}

/** Filed under the hash of its own name, with digests that are digests. */
function validImage(file: string, v: unknown): v is ImageRecord {
  if (!isObject(v) || !isString(v.name) || file !== `${sha256Hex(v.name)}.json`) return false;
  if (!isDigest(v.digest) || !isDigest(v.manifestDigest) || !isDigest(v.configDigest) || !Array.isArray(v.layers)) return false;
  return v.layers.every((l: unknown) => isObject(l) && isDigest(l.digest) && isDigest(l.diffId));
}

/** Image names → records, one JSON file per name under `meta/images/`, written atomically. */
export class ImageStore {
  readonly dir: string;
  /** The file text each record returned by get() was parsed from (see reread). */
  readonly #texts = new WeakMap<ImageRecord, string>();

  constructor(root: string) {
    this.dir = join(root, 'meta', 'images');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  #path(name: string): string {
    return join(this.dir, `${sha256Hex(name)}.json`);
  }

  get(name: string): ImageRecord | undefined {
    const file = `${sha256Hex(name)}.json`;
    let text: string;
    let rec: unknown;
    try {
      text = fs.readFileSync(join(this.dir, file), 'utf8');
      rec = JSON.parse(text);
    } catch {
      return undefined; // absent, or unreadable / unparsable: check reports it
    }
    if (!validImage(file, rec)) return undefined;
    this.#texts.set(rec, text);
    return rec;
  }

  /**
   * The record of `rec.name` as it is now on disk (after taking a lock, say):
   * `rec` itself when the file still holds the very text it came from, which
   * spares a parse and check of a record that lists 500 layers.
   */
  reread(rec: ImageRecord): ImageRecord | undefined {
    const seen = this.#texts.get(rec);
    if (seen === undefined) return this.get(rec.name);
    let text: string;
    try {
      text = fs.readFileSync(this.#path(rec.name), 'utf8');
    } catch {
      return undefined; // as get()
    }
    return text === seen ? rec : this.get(rec.name);
  }

  /** Like get(), but throws TSG_NOT_FOUND. */
  require(name: string): ImageRecord {
    const rec = this.get(name);
    if (!rec) throw new NotFoundError('TSG_NOT_FOUND', `image ${name} is not in the store`, { data: { name } });
    return rec;
  }

  /** Creates or replaces the record for `record.name`. */
  put(record: ImageRecord): void {
    writeJsonAtomic(this.#path(record.name), record);
  }

  remove(name: string): boolean {
    try {
      fs.rmSync(this.#path(name));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  list(): ImageRecord[] {
    return this.scan().records.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Valid records, and the files that are not (see records.ts). */
  scan(): RecordScan<ImageRecord> {
    return scanRecords(this.dir, validImage);
  }

  /** Deletes a record file that is not a valid record (check --repair). */
  removeInvalid(file: string): void {
    removeRecordFile(this.dir, file);
  }
}
