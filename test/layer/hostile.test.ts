/**
 * Acceptance 3: hostile layers are rejected or contained, and nothing is ever
 * written outside the layer root. Each case runs through every whiteout
 * format (overlay, naive for vfs/btrfs, aufs) on a fresh tmpfs and on btrfs
 * (a loop file), with a sentinel directory beside the root that must stay
 * exactly as it was.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { TsgraphError } from '../../src/errors.js';
import { applyTar } from '../../src/layer/apply.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { aufsFormat, naiveFormat, overlayFormat, type WhiteoutFormat } from '../../src/layer/whiteout.js';
import { listXattrs } from '../../src/layer/xattr.js';
import { type TarEntry, makeTar } from '../helpers/image-builder.js';
import { mountTmpfs } from '../helpers/tmpfs.js';
import { makeBtrfs } from '../helpers/btrfs.js';
import { listTree } from '../helpers/tree.js';
import { rawTar } from './raw-tar.js';

interface Case {
  name: string;
  entries: () => Promise<Buffer> | Buffer;
  /** Error code when rejected; undefined when the layer must apply but stay contained. */
  rejects?: string;
  /** Extra checks on the root after a contained apply. */
  check?: (root: string, format: WhiteoutFormat) => void;
}

/** A tar with one entry whose PAX header carries a `size`-byte path. */
async function hugePaxTar(size: number): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  pack.entry({ name: 'x', pax: { path: 'a'.repeat(size) } }, 'data');
  pack.finalize();
  await ended;
  const out = Buffer.concat(chunks);
  assert.ok(out.length > size, 'the crafted tar really holds the huge header');
  return out;
}

/** The production path: TarTap (diffId, raw PAX, header caps) → tar-stream → applier. */
async function applyLayer(root: string, bytes: Buffer, format: WhiteoutFormat): Promise<void> {
  const { tar: stream, tap, done } = openLayerTar(Readable.from([bytes]), 'none');
  done.catch(() => {});
  try {
    await applyTar(root, stream, { format, pax: tap.pax });
    await done;
  } finally {
    stream.destroy();
  }
}

const tarOf = (entries: TarEntry[]) => () => makeTar(entries);

const cases: Case[] = [
  { name: 'a `../` name', entries: tarOf([{ path: '../escape', content: 'x' }]), rejects: 'TSG_UNSAFE_PATH' },
  { name: 'a deeper `..` name', entries: tarOf([{ path: 'a/../../escape', content: 'x' }]), rejects: 'TSG_UNSAFE_PATH' },
  { name: 'an absolute name', entries: tarOf([{ path: '/etc/escape', content: 'x' }]), rejects: 'TSG_UNSAFE_PATH' },
  {
    name: 'a symlink to outside, then a write through it',
    entries: tarOf([{ path: 'evil', type: 'symlink', linkname: '../outside' }, { path: 'evil/pwned', content: 'x' }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'an absolute symlink, then a write through it',
    entries: tarOf([{ path: 'evil', type: 'symlink', linkname: '/' }, { path: 'evil/tmp/pwned', content: 'x' }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'a hardlink to a path outside',
    entries: tarOf([{ path: 'hl', type: 'link', linkname: '../outside/secret' }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'a hardlink to an absolute path',
    entries: tarOf([{ path: 'hl', type: 'link', linkname: '/etc/passwd' }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'a hardlink through a symlink',
    entries: tarOf([{ path: 's', type: 'symlink', linkname: '../outside' }, { path: 'hl', type: 'link', linkname: 's/secret' }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'a symlink dir swap (dir, then symlink in its place, then a write below)',
    entries: tarOf([
      { path: 'd/', type: 'directory' },
      { path: 'd/f', content: 'fine' },
      { path: 'd', type: 'symlink', linkname: '../outside' },
      { path: 'd/g', content: 'x' },
    ]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'a whiteout through a symlink',
    entries: tarOf([{ path: 's', type: 'symlink', linkname: '../outside' }, { path: 's/.wh.secret', content: '' }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'an opaque marker through a symlink',
    entries: tarOf([{ path: 's', type: 'symlink', linkname: '../outside' }, { path: 's/.wh..wh..opq', content: '' }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  { name: '`.wh.` alone', entries: tarOf([{ path: '.wh.', content: '' }]), rejects: 'TSG_UNSAFE_PATH' },
  { name: 'a whiteout of `..`', entries: tarOf([{ path: 'a/.wh...', content: '' }]), rejects: 'TSG_UNSAFE_PATH' },
  { name: 'a whiteout of `.`', entries: tarOf([{ path: 'a/.wh..', content: '' }]), rejects: 'TSG_UNSAFE_PATH' },
  { name: 'a char device 0/0 (an overlay whiteout in disguise)', entries: tarOf([{ path: 'wh', type: 'character-device', devmajor: 0, devminor: 0 }]), rejects: 'TSG_UNSAFE_PATH' },
  { name: 'a huge PAX header', entries: () => hugePaxTar(2 << 20), rejects: 'TSG_INVALID_LAYER' },
  {
    name: 'an entry hidden after the end-of-archive marker',
    entries: () => rawTar([{ name: 'a', data: 'A' }], rawTar([{ name: 'hidden', data: 'x' }])),
    rejects: 'TSG_INVALID_LAYER',
  },
  {
    name: 'a char device whose major (2^32) would wrap to 0/0',
    entries: () => rawTar([{ name: 'wh', type: '3', raw: { devmajor: Buffer.from([0x80, 0, 0, 1, 0, 0, 0, 0]) } }]),
    rejects: 'TSG_INVALID_LAYER',
  },
  {
    name: 'a non-UTF-8 hardlink target outside the root',
    entries: () => rawTar([{ name: 'hl', type: '1', linkname: Buffer.from('../outside/secr\xe9t', 'latin1') }]),
    rejects: 'TSG_UNSAFE_PATH',
  },
  {
    name: 'image-supplied trusted.overlay.* and user.overlay.* xattrs',
    entries: tarOf([
      { path: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.overlay.opaque': 'y' } },
      { path: 'f', content: 'x', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc', 'SCHILY.xattr.trusted.overlay.metacopy': '' } },
    ]),
    check: (root, format) => {
      const names = [...listXattrs(join(root, 'd')), ...listXattrs(join(root, 'f'))];
      if (format.name === 'overlay') {
        // Escaped: overlayfs shows these to the container but never acts on them.
        assert.ok(!names.some((n) => /^trusted\.overlay\.(opaque|redirect|metacopy)$/.test(n)), names.join(','));
        assert.ok(names.includes('trusted.overlay.overlay.opaque'));
      }
    },
  },
  {
    name: 'duplicate entries (the last one wins)',
    entries: tarOf([
      { path: 'dup', content: 'first' },
      { path: 'dup', content: 'second' },
      { path: 'dd', content: 'file' },
      { path: 'dd/', type: 'directory' },
      { path: 'dd/in', content: 'inside' },
    ]),
    check: (root) => {
      assert.equal(fs.readFileSync(join(root, 'dup'), 'utf8'), 'second');
      assert.equal(fs.readFileSync(join(root, 'dd/in'), 'utf8'), 'inside');
    },
  },
];

const formats: WhiteoutFormat[] = [overlayFormat, naiveFormat, aufsFormat];

/** Where the layers are applied: a tmpfs, and btrfs on a loop file (vfs/btrfs layers live there). */
const filesystems: Array<{ name: string; make: () => { dir: string; cleanup(): void } }> = [
  { name: 'tmpfs', make: () => mountTmpfs('256m') },
  { name: 'btrfs', make: () => makeBtrfs('512m') },
];

for (const filesystem of filesystems) {
  describe(`hostile layers are rejected or contained (${filesystem.name})`, () => {
    let tmp: { dir: string; cleanup(): void };
    before(() => {
      tmp = filesystem.make();
    });
    after(() => tmp?.cleanup());

    for (const format of formats) {
      describe(`${format.name} format`, () => {
        cases.forEach((c, i) => {
          it(c.rejects ? `rejects ${c.name} (${c.rejects})` : `contains ${c.name}`, async () => {
            const base = join(tmp.dir, `${format.name}-${i}`);
            const root = join(base, 'root');
            const outside = join(base, 'outside');
            fs.mkdirSync(root, { recursive: true });
            fs.mkdirSync(outside);
            fs.writeFileSync(join(outside, 'secret'), 'do not touch');
            const sentinel = listTree(outside);
            const run = applyLayer(root, await c.entries(), format);
            if (c.rejects) {
              await assert.rejects(run, (e: unknown) => {
                assert.ok(e instanceof TsgraphError, `expected a TsgraphError, got ${String(e)}`);
                assert.equal(e.code, c.rejects);
                return true;
              });
            } else {
              await run;
              c.check?.(root, format);
            }
            assert.deepEqual(listTree(outside), sentinel, 'the sentinel beside the root is untouched');
            assert.deepEqual(fs.readdirSync(base).sort(), ['outside', 'root'], 'nothing new next to the root');
          });
        });
      });
    }
  });
}
