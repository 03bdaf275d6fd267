/**
 * Manifests, indexes and configs nesting deeper than any OCI document does are
 * refused at parse time (review of issue 11, F6: 200,000 nested arrays in a
 * config field loaded, then inspect died with "Maximum call stack size exceeded").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonValue } from '../../src/oci/schemas.js';

test('deep nesting is TSG_INVALID_MANIFEST; ordinary documents parse', () => {
  const nest = (n: number) => '['.repeat(n) + '1' + ']'.repeat(n);
  for (const n of [65, 1000, 200_000]) {
    assert.throws(() => parseJsonValue(Buffer.from(`{"config":{"x":${nest(n)}}}`), 'config c'), { code: 'TSG_INVALID_MANIFEST', message: /nests deeper than 64/ }, String(n));
  }
  assert.deepEqual(parseJsonValue(Buffer.from(`{"x":${nest(60)}}`), 'ok') !== undefined, true);
  assert.deepEqual(parseJsonValue(Buffer.from('{"history":[{"created_by":"sh"}],"rootfs":{"diff_ids":[]}}'), 'c'), { history: [{ created_by: 'sh' }], rootfs: { diff_ids: [] } });
});
