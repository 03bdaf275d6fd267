import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { familiarName, formatReference, parseReference } from '../../src/reference.js';
import { TsgraphError } from '../../src/errors.js';

describe('reference normalisation (like docker)', () => {
  const D = `sha256:${'a'.repeat(64)}`;
  const cases: Array<[string, string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['me/app', 'docker.io/me/app:latest', 'me/app:latest'],
    ['index.docker.io/me/app:2', 'docker.io/me/app:2', 'me/app:2'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['localhost:5000/a/b/c:t', 'localhost:5000/a/b/c:t', 'localhost:5000/a/b/c:t'],
    ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest', '127.0.0.1:5000/x:latest'],
    ['ghcr.io/org/app_1.x-y', 'ghcr.io/org/app_1.x-y:latest', 'ghcr.io/org/app_1.x-y:latest'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
  ];
  for (const [input, full, short] of cases) {
    it(`${input} → ${full}`, () => {
      const ref = parseReference(input);
      assert.equal(formatReference(ref), full);
      assert.equal(familiarName(ref), short);
    });
  }

  const bad = ['', 'UPPER', 'a//b', 'a:', ':tag', 'busybox@sha256:abc', 'busybox@md5:' + 'a'.repeat(32), 'a/-b', 'x'.repeat(300), 'foo bar',
    // A name that spells an image ID (docker: "cannot specify 64-byte hexadecimal strings").
    'a'.repeat(64), `${'b'.repeat(64)}:1`, `me/${'c'.repeat(64)}`, `localhost:5000/${'d'.repeat(64)}`, `sha256:${'e'.repeat(64)}`];
  for (const input of bad) {
    it(`rejects ${JSON.stringify(input.slice(0, 30))}`, () => {
      assert.throws(() => parseReference(input), (err: unknown) => {
        assert.ok(err instanceof TsgraphError);
        assert.ok(['TSG_INVALID_REFERENCE', 'TSG_UNSUPPORTED'].includes(err.code), err.code);
        return true;
      });
    });
  }
});
