/**
 * Zero padding after a tar's end-of-archive marker is bounded (review of
 * issue 11, F4: `load -i /dev/zero` and a layer with gigabytes of trailing
 * zeros were read and hashed to the end).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_TRAILER, TarScanner } from '../../src/layer/tar-scan.js';
import { makeTar } from '../helpers/image-builder.js';

test('up to MAX_TRAILER of zero padding passes; more is TSG_INVALID_LAYER', async () => {
  const tar = await makeTar([{ path: 'a', content: 'x' }]);
  const ok = new TarScanner();
  ok.scan(tar);
  ok.scan(Buffer.alloc(MAX_TRAILER - tar.length)); // GNU tar pads to 10 KiB; a MiB is far beyond any writer
  ok.end();
  const bad = new TarScanner();
  bad.scan(tar);
  assert.throws(() => {
    for (let i = 0; i < 4; i++) bad.scan(Buffer.alloc(MAX_TRAILER / 2));
  }, { code: 'TSG_INVALID_LAYER', message: /padding after the end-of-archive marker/ });
});
