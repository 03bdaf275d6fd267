/**
 * TarTap keeps PAX records byte-exact: a binary xattr (not valid UTF-8, like
 * security.capability) reaches the layer unchanged, where tar-stream alone
 * would have decoded it as a string and mangled it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { applyTar } from '../../src/layer/apply.js';
import { parsePaxRecords } from '../../src/layer/pax.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { naiveFormat } from '../../src/layer/whiteout.js';
import { getXattr, setXattr } from '../../src/layer/xattr.js';
import { generateLayerTar } from '../../src/layer/generate.js';
import { spawnSync } from 'node:child_process';
import { sha256 } from '../../src/digest.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

/** One ustar header block with a correct checksum. */
function header(name: string, type: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}
const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

describe('byte-exact PAX xattrs', () => {
  let dir: string;
  before(() => {
    dir = makeTempDir();
  });
  after(() => removeDir(dir));

  const binary = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x80, 0x00, 0xc3]);

  it('generated layers keep binary xattrs byte-exact (and long names), through a real apply', async () => {
    const src = join(dir, 'src');
    const long = `${'deep-directory-name/'.repeat(6)}file-with-a-long-name`;
    fs.mkdirSync(join(src, long, '..'), { recursive: true });
    fs.writeFileSync(join(src, 'cap'), 'ping');
    fs.writeFileSync(join(src, long), 'long');
    setXattr(join(src, 'cap'), 'user.cap', binary);
    setXattr(join(src, long), 'user.cap', binary);
    setXattr(join(src, long), 'user.text', 'plain');
    const changes = ['cap', ...long.split('/').map((_, i, a) => a.slice(0, i + 1).join('/'))].map((p) => ({ kind: 'A' as const, path: `/${p}` }));
    const tarStream = generateLayerTar(changes, { root: src, source: 'tree' });
    const chunks: Buffer[] = [];
    for await (const c of tarStream as AsyncIterable<Buffer>) chunks.push(c);
    const out = join(dir, 'out');
    fs.mkdirSync(out);
    const { tar, tap, done } = openLayerTar(Readable.from([Buffer.concat(chunks)]), 'none');
    await applyTar(out, tar, { format: naiveFormat, pax: tap.pax });
    tar.resume();
    await done;
    assert.deepEqual(getXattr(join(out, 'cap'), 'user.cap'), binary);
    assert.equal(fs.readFileSync(join(out, long), 'utf8'), 'long');
    assert.deepEqual(getXattr(join(out, long), 'user.cap'), binary);
    assert.equal(getXattr(join(out, long), 'user.text')?.toString(), 'plain');
    const gnu = spawnSync('tar', ['-tf', '-'], { input: Buffer.concat(chunks), encoding: 'utf8' });
    assert.ok(gnu.stdout.split('\n').includes(long), 'GNU tar reads the long name from our PAX header');
  });

  it('parses records with binary values', () => {
    const recs = parsePaxRecords(paxRecord('SCHILY.xattr.user.bin', binary));
    assert.deepEqual(recs.get('SCHILY.xattr.user.bin'), binary);
  });

  it('applies a non-UTF-8 xattr value unchanged and hashes the tar for its diffId', async () => {
    const pax = paxRecord('SCHILY.xattr.user.bin', binary);
    const content = Buffer.from('payload');
    const tarBytes = Buffer.concat([
      header('PaxHeaders/f', 'x', pax.length),
      pad(pax),
      header('f', '0', content.length),
      pad(content),
      Buffer.alloc(1024),
    ]);
    const root = join(dir, 'root');
    fs.mkdirSync(root);
    const { tar, tap, done } = openLayerTar(Readable.from([tarBytes]), 'none');
    await applyTar(root, tar, { format: naiveFormat, pax: tap.pax });
    tar.resume();
    await done;
    assert.equal(tap.digest, sha256(tarBytes));
    assert.equal(fs.readFileSync(join(root, 'f'), 'utf8'), 'payload');
    assert.deepEqual(getXattr(join(root, 'f'), 'user.bin'), binary);
  });
});
