/**
 * `commit --change` parsing as docker does it (LABEL/ENV quoting, EXPOSE
 * validation) and `--platform` validation (issue 11).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyChange, type RunConfig } from '../../src/oci/config-changes.js';
import { parsePlatform, hostPlatform } from '../../src/platform.js';

const apply = (...changes: string[]): RunConfig => {
  const c: RunConfig = {};
  for (const ch of changes) applyChange(c, ch);
  return c;
};

test('LABEL: quoted keys and values split at the first = like docker', () => {
  assert.deepEqual(apply('LABEL a=b "c d"=e').Labels, { a: 'b', 'c d': 'e' });
  assert.deepEqual(apply('LABEL x="v 1" y=\'w 2\' z=a\\ b').Labels, { x: 'v 1', y: 'w 2', z: 'a b' });
  assert.deepEqual(apply('LABEL k="a=b"').Labels, { k: 'a=b' });
  assert.deepEqual(apply('LABEL q="say \\"hi\\""').Labels, { q: 'say "hi"' });
  assert.deepEqual(apply('LABEL old value with spaces').Labels, { old: 'value with spaces' });
  assert.deepEqual(apply('LABEL a=1', 'LABEL a=2 b=3').Labels, { a: '2', b: '3' });
});

test('LABEL and ENV refuse what docker refuses', () => {
  assert.throws(() => apply('LABEL a="b'), { code: 'TSG_USAGE', message: /unterminated/ });
  assert.throws(() => apply('LABEL =b'), { code: 'TSG_USAGE', message: /empty/ });
  assert.throws(() => apply('LABEL a=b c'), { code: 'TSG_USAGE', message: /not KEY=VALUE/ });
  assert.throws(() => apply('ENV onlykey'), { code: 'TSG_USAGE' });
});

test('ENV: quoting and replacing a key', () => {
  assert.deepEqual(apply('ENV A=1 "B C"="x y"', 'ENV A=2').Env, ['A=2', 'B C=x y']);
  assert.deepEqual(apply('ENV PATH /usr/bin:/bin').Env, ['PATH=/usr/bin:/bin']);
});

test('EXPOSE: ports, protocols and ranges; anything else refused', () => {
  assert.deepEqual(Object.keys(apply('EXPOSE 80 53/udp 8000-8002/TCP').ExposedPorts!), ['80/tcp', '53/udp', '8000/tcp', '8001/tcp', '8002/tcp']);
  for (const bad of ['EXPOSE abc', 'EXPOSE 0', 'EXPOSE 65536', 'EXPOSE 80/icmp', 'EXPOSE 90-80', 'EXPOSE 80/']) {
    assert.throws(() => apply(bad), { code: 'TSG_USAGE', message: /invalid port/ }, bad);
  }
});

test('--platform: docker forms parse, typos are usage errors', () => {
  assert.deepEqual(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: undefined });
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: undefined });
  assert.deepEqual(parsePlatform('Linux/x86_64'), { os: 'linux', architecture: 'amd64', variant: undefined });
  assert.deepEqual(parsePlatform('arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(parsePlatform('linux').architecture, hostPlatform().architecture);
  for (const bad of ['linux/amd46', 'lunix/amd64', 'linux/', '/amd64', 'linux/amd64/v1/x', 'linux/am d64', 'x'.repeat(40)]) {
    assert.throws(() => parsePlatform(bad), { code: 'TSG_USAGE', message: /invalid platform/ }, bad);
  }
});

test('pull --platform that a single-platform image does not match is TSG_PLATFORM_NOT_FOUND, before any layer', async (t) => {
  const { join } = await import('node:path');
  const { makeTempDir, removeDir } = await import('../helpers/tmp.js');
  const { makeImage, makeLayer, writeOciLayout } = await import('../helpers/image-builder.js');
  const { Store } = await import('../../src/store/store.js');
  const dir = makeTempDir();
  t.after(() => removeDir(dir));
  const layer = await makeLayer([{ path: 'hello', content: 'hi' }]);
  writeOciLayout(join(dir, 'layout'), [{ tag: 'one', image: makeImage({ layers: [layer], platform: { os: 'linux', architecture: 'amd64' } }) }]);
  await using store = await Store.open({ root: join(dir, 'root'), driver: 'vfs' });
  const ref = `oci:${join(dir, 'layout')}:one`;
  await assert.rejects(store.pull(ref, { platform: 'linux/arm64', unpack: false }), (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'TSG_PLATFORM_NOT_FOUND');
    assert.match(e.message!, /single-platform image for linux\/amd64, not linux\/arm64/);
    return true;
  });
  assert.equal(store.content.has(layer.digest), false, 'no layer fetched');
  assert.equal(store.listImages().length, 0);
  // The matching platform, and no --platform at all, still pull; a later mismatching re-pull is refused too.
  await store.pull(ref, { platform: 'linux/amd64', unpack: false });
  await assert.rejects(store.pull(ref, { platform: 'linux/arm64', unpack: false }), { code: 'TSG_PLATFORM_NOT_FOUND' });
  await store.pull(ref, { unpack: false });
});

test('overlay options named like Object.prototype members are TSG_USAGE, not an internal error (review F4)', async () => {
  const { parseOverlayOption } = await import('../../src/mount/options.js');
  for (const opt of ['toString', 'constructor=x', '__proto__', 'hasOwnProperty=1', 'valueOf']) {
    assert.throws(() => parseOverlayOption(opt), { code: 'TSG_USAGE' }, opt);
  }
  assert.deepEqual(parseOverlayOption('xino=off'), ['xino', 'off']);
});
