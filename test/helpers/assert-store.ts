/** Assertions on what a store root holds, read straight from disk. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../../src/digest.js';

/** Each digest is a committed blob: present, read-only, and its bytes hash to its name. */
export function assertBlobsStored(root: string, digests: string[]): void {
  for (const d of digests) {
    const path = join(root, 'content', 'blobs', 'sha256', d.replace('sha256:', ''));
    assert.ok(fs.existsSync(path), `blob ${d} missing from ${root}`);
    const st = fs.statSync(path);
    assert.equal(st.mode & 0o777, 0o444, `blob ${d} is not read-only`);
    assert.equal(sha256(fs.readFileSync(path)), d, `blob ${d} content does not match its name`);
  }
}

export function assertBlobAbsent(root: string, digest: string): void {
  const path = join(root, 'content', 'blobs', 'sha256', digest.replace('sha256:', ''));
  assert.ok(!fs.existsSync(path), `blob ${digest} should not be stored`);
}
