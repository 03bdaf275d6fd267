/**
 * Reading a directory of JSON records (images, layers, containers) without
 * trusting them: a record is data on disk that a crash can truncate and, in
 * a root that was once writable by others, a person can forge. Fields of a
 * record become file names (a container's id names its lock, its name its
 * record), so a record is used only when it parses, has the shape its store
 * expects, and is filed under the name its own fields give. Anything else is
 * skipped by every verb and reported by `tsgraph check`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { isDigest } from '../digest.js';

export interface RecordScan<T> {
  records: T[];
  /** File names (in the dir) that do not hold a valid record. */
  invalid: string[];
}

/** Reads every `*.json` in `dir`; `valid(file, value)` decides, per record. */
export function scanRecords<T>(dir: string, valid: (file: string, value: unknown) => value is T): RecordScan<T> {
  const out: RecordScan<T> = { records: [], invalid: [] };
  let files: string[];
  try {
    files = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const f of files) {
    if (!f.endsWith('.json')) continue;
    let value: unknown;
    try {
      value = JSON.parse(fs.readFileSync(join(dir, f), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
      out.invalid.push(f);
      continue;
    }
    if (valid(f, value)) out.records.push(value);
    else out.invalid.push(f);
  }
  return out;
}

/** Deletes record file `file` (a name from scanRecords' `invalid`) in `dir`; nothing else. */
export function removeRecordFile(dir: string, file: string): void {
  if (file.includes('/') || !file.endsWith('.json')) return;
  fs.rmSync(join(dir, file), { force: true });
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isOptionalDigest = (v: unknown) => v === undefined || v === null || isDigest(v);
export const isString = (v: unknown): v is string => typeof v === 'string';
