/**
 * Container layers: writable layers on top of an image, by name.
 * `meta/containers/<name>.json` holds the record; the driver holds the layer.
 * A name is claimed atomically (link(2) of a complete temp record: exactly
 * one of several racing processes wins) with `state: 'creating'`; the record
 * loses that state only once its layer exists and is mounted. A record still
 * `creating` whose creator is gone is a crash leftover (Mounter.repair), and
 * so is one still `removing` (the removal is finished).
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type Digest, isDigest } from '../digest.js';
import { type RecordScan, isObject, isOptionalDigest, isString, removeRecordFile, scanRecords } from './records.js';
import { BusyError, NotFoundError, UsageError } from '../errors.js';
import { fsyncDir, readJsonIfExists, tempName, writeJsonAtomic } from '../util/fs-atomic.js';

/** A container layer's record (`meta/containers/<name>.json`). */
export interface ContainerRecord {
  name: string;
  /** Driver layer id of the writable layer. */
  id: string;
  image: string;
  imageDigest: Digest;
  /** chainId of the image's top layer (the container's parent), if any. */
  parent: Digest | undefined;
  driver: string;
  readOnly: boolean;
  /** Where get() put the root, the last time it was mounted. */
  path: string | undefined;
  createdAt: string;
  /**
   * `creating` from the claim until the layer is made and mounted;
   * `removing` from the start of `rm` until the record is gone; absent when ready.
   */
  state?: 'creating' | 'removing' | undefined;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Layer ids as LayerDirs accepts them: one path component, never `.` or `..`. */
const LAYER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** A record is used only when its fields are what they claim and it is filed under its own name. */
function validContainer(file: string, v: unknown): v is ContainerRecord {
  if (!isObject(v)) return false;
  return (
    isString(v.name) && NAME_RE.test(v.name) && file === `${v.name}.json` &&
    isString(v.id) && LAYER_ID_RE.test(v.id) &&
    isString(v.image) && isDigest(v.imageDigest) && isOptionalDigest(v.parent) &&
    isString(v.driver) && typeof v.readOnly === 'boolean' &&
    (v.path === undefined || v.path === null || isString(v.path)) &&
    isString(v.createdAt) &&
    (v.state === undefined || v.state === 'creating' || v.state === 'removing')
  );
}

export class ContainerStore {
  readonly dir: string;
  constructor(root: string) {
    this.dir = join(root, 'meta', 'containers');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  static checkName(name: string): void {
    if (!NAME_RE.test(name)) {
      throw new UsageError('TSG_USAGE', `invalid container name ${JSON.stringify(name)} (letters, digits, '_', '.', '-'; 128 at most)`);
    }
  }

  static newId(): string {
    return `c-${randomBytes(16).toString('hex')}`;
  }

  /**
   * A readable default name: `<image basename>-<6 hex>`. The basename is the
   * last path component without tag or digest, so `localhost:5000/app:1` gives
   * `app-…`, not the registry host cut at its port.
   */
  static defaultName(image: string): string {
    const last = image.split('@')[0]!.split('/').pop()!;
    const base = last.replace(/:.*$/, '').replace(/[^a-zA-Z0-9_.-]/g, '') || 'container';
    return `${base}-${randomBytes(3).toString('hex')}`;
  }

  get(name: string): ContainerRecord | undefined {
    if (!NAME_RE.test(name)) return undefined;
    let rec: unknown;
    try {
      rec = readJsonIfExists(join(this.dir, `${name}.json`));
    } catch {
      return undefined; // unparsable: check reports it
    }
    return rec !== undefined && validContainer(`${name}.json`, rec) ? rec : undefined;
  }

  require(name: string): ContainerRecord {
    const rec = this.get(name);
    if (!rec) throw new NotFoundError('TSG_NOT_FOUND', `no container named ${name}`, { data: { name } });
    return rec;
  }

  put(rec: ContainerRecord): void {
    writeJsonAtomic(join(this.dir, `${rec.name}.json`), rec);
  }

  static exists(name: string): BusyError {
    return new BusyError('TSG_EXISTS', `a container named ${name} already exists`, { data: { name } });
  }

  /**
   * Claims `rec.name` atomically: the complete record is written to a temp
   * file and hard-linked to its name, which fails with EEXIST for every
   * process but one. Throws TSG_EXISTS when the name is taken.
   */
  claim(rec: ContainerRecord): void {
    ContainerStore.checkName(rec.name);
    const path = join(this.dir, `${rec.name}.json`);
    const tmp = tempName(path);
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    try {
      try {
        fs.writeFileSync(fd, JSON.stringify(rec, null, 2) + '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw ContainerStore.exists(rec.name);
      throw err;
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    fsyncDir(this.dir);
  }

  remove(name: string): void {
    fs.rmSync(join(this.dir, `${name}.json`), { force: true });
  }

  list(): ContainerRecord[] {
    return this.scan().records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Valid records, and the files that are not (see records.ts). */
  scan(): RecordScan<ContainerRecord> {
    return scanRecords(this.dir, validContainer);
  }

  /** Deletes a record file that is not a valid record (check --repair). */
  removeInvalid(file: string): void {
    removeRecordFile(this.dir, file);
  }
}
