/**
 * Image references by ID (src/store/find-image.ts): an ID prefix of one
 * image content resolves even when the content has several names (it was
 * "matches 3 images" for any length), says which names share it (rmi needs
 * them), and is refused only when it names different contents.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Digest } from '../../src/digest.js';
import { findImage, resolveImage } from '../../src/store/find-image.js';
import { type ImageRecord, ImageStore } from '../../src/store/image-store.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const d = (hex: string) => `sha256:${hex.padEnd(64, '0')}` as Digest;

function record(name: string, config: string, manifest: string): ImageRecord {
  return {
    name,
    digest: d(manifest),
    manifestDigest: d(manifest),
    manifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
    configDigest: d(config),
    platform: 'linux/amd64',
    layers: [],
    size: 0,
    source: name,
    pulledAt: '2024-01-01T00:00:00Z',
  };
}

describe('findImage by ID', () => {
  const dir = makeTempDir('tsgraph-find-image-');
  after(() => removeDir(dir));
  const images = new ImageStore(dir);
  images.put(record('localhost/a:1', 'aaa1', 'cc01'));
  images.put(record('localhost/a:2', 'aaa1', 'cc01'));
  images.put(record('localhost/a-copy:1', 'aaa1', 'cc02')); // same config, other manifest: the same image ID
  images.put(record('localhost/b:1', 'aaa2', 'dd01'));

  it('an ID prefix of content with several names resolves to it and lists every name', () => {
    for (const ref of ['aaa1', 'sha256:aaa1', d('aaa1')]) {
      const m = resolveImage(images, ref);
      assert.equal(m.byId, true, ref);
      assert.equal(m.image.configDigest, d('aaa1'));
      assert.deepEqual(m.names.map((i) => i.name), ['localhost/a-copy:1', 'localhost/a:1', 'localhost/a:2']);
    }
    assert.equal(findImage(images, 'cc01').configDigest, d('aaa1'), 'a manifest digest prefix too');
    assert.equal(findImage(images, 'aaa2').name, 'localhost/b:1');
  });

  it('a prefix of different contents is TSG_USAGE naming them; too short or unknown is TSG_NOT_FOUND', () => {
    assert.throws(() => findImage(images, 'aaa'), (e: Error & { code?: string }) => e.code === 'TSG_USAGE' && /2 different images .*localhost\/b:1/.test(e.message));
    assert.throws(() => findImage(images, 'aa'), { code: 'TSG_NOT_FOUND' });
    assert.throws(() => findImage(images, 'fff'), { code: 'TSG_NOT_FOUND' });
  });

  it('a name wins over an ID that spells the same', () => {
    images.put(record('docker.io/library/aaa1:latest', 'ee01', 'ee02'));
    const m = resolveImage(images, 'aaa1');
    assert.equal(m.byId, false);
    assert.equal(m.image.name, 'docker.io/library/aaa1:latest');
    assert.deepEqual(m.names.map((i) => i.name), ['docker.io/library/aaa1:latest']);
    images.remove('docker.io/library/aaa1:latest');
  });

  it('a full ID or a sha256: value is an ID before any name that spells it (stored before names were checked)', () => {
    // Records as an older tsgraph (or a hostile archive) could have stored them: names that spell b's ID.
    const full = d('aaa2').slice(7);
    images.put(record(`docker.io/library/sha256:${full}`, 'ff01', 'ff02'));
    images.put(record(`docker.io/library/${full}:latest`, 'ff03', 'ff04'));
    try {
      for (const ref of [d('aaa2'), full, 'sha256:aaa2']) {
        const m = resolveImage(images, ref);
        assert.equal(m.byId, true, ref);
        assert.equal(m.image.name, 'localhost/b:1', ref);
      }
    } finally {
      images.remove(`docker.io/library/sha256:${full}`);
      images.remove(`docker.io/library/${full}:latest`);
    }
  });
});
