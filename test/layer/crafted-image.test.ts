/**
 * Acceptance 2: a crafted three-layer image (whiteouts, an opaque dir,
 * file↔dir swaps, hardlinks, symlinks, xattrs, setuid/setgid/sticky, a fifo,
 * a char device, names with spaces and unicode, a deep path, an empty dir)
 * is pulled from an OCI layout and mounted through overlay, btrfs (on a loop
 * filesystem) and vfs. Every mounted tree must equal the listing stated
 * below, line for line: names, types, modes, owners, sizes + hashes, link
 * targets, xattrs (the image's own, none of overlay's) and hardlink groups.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { type TarEntry, makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type Tmpfs, mountPoints, mountTmpfs } from '../helpers/tmpfs.js';
import { type LoopFs, makeBtrfs } from '../helpers/btrfs.js';
import { listTree } from '../helpers/tree.js';

const DEEP = 'a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t';

const layer1: TarEntry[] = [
  { path: 'bin/', type: 'directory' },
  { path: 'bin/tool', content: 'tool v1', mode: 0o755 },
  { path: 'etc/', type: 'directory' },
  { path: 'etc/conf', content: 'conf v1' },
  { path: 'gone/', type: 'directory' },
  { path: 'gone/a', content: 'a' },
  { path: 'gone/sub/', type: 'directory' },
  { path: 'gone/sub/b', content: 'b' },
  { path: 'opq/', type: 'directory' },
  { path: 'opq/old1', content: 'o1' },
  { path: 'opq/old2', content: 'o2' },
  { path: 'swap-fd', content: 'was a file' },
  { path: 'swap-df/', type: 'directory' },
  { path: 'swap-df/inner', content: 'inner' },
  { path: 'rm-me', content: 'x' },
  { path: 'links/', type: 'directory' },
  { path: 'links/target', content: 'hardlinked content' },
  { path: 'links/hl', type: 'link', linkname: 'links/target' },
  { path: 'with space/', type: 'directory' },
  { path: 'with space/file name.txt', content: 'spaces' },
  { path: 'with space/stays.txt', content: 'stays' },
  { path: 'ünïcødé/', type: 'directory' },
  { path: 'ünïcødé/日本語.txt', content: 'unicode' },
  { path: `${DEEP}/deep.txt`, content: 'deep' },
  { path: 'empty/', type: 'directory', mode: 0o700 },
  { path: 'xdir/', type: 'directory' },
  { path: 'xdir/keep', content: 'keep me' },
];

const layer2: TarEntry[] = [
  { path: 'bin/tool', content: 'tool v2', mode: 0o4755 },
  { path: '.wh.gone', content: '' },
  { path: 'opq/new', content: 'n' },
  { path: 'opq/.wh..wh..opq', content: '' },
  { path: 'swap-fd/', type: 'directory' },
  { path: 'swap-fd/now-dir', content: 'd' },
  { path: 'swap-df', content: 'now a file' },
  { path: '.wh.rm-me', content: '' },
  { path: 'dev/', type: 'directory' },
  { path: 'dev/fifo', type: 'fifo', mode: 0o644 },
  { path: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { path: 'link-rel', type: 'symlink', linkname: 'bin/tool' },
  { path: 'link-abs', type: 'symlink', linkname: '/etc/conf' },
  { path: 'link-dangling', type: 'symlink', linkname: 'nowhere/at all' },
  { path: 'etc/noted', content: 'with xattr', pax: { 'SCHILY.xattr.user.note': 'hello xattr' } },
  // An image may carry an overlay xattr; it must reach the container as data, not act as opaque.
  { path: 'xdir/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } },
];

const layer3: TarEntry[] = [
  { path: 'etc/conf', content: 'conf v3', mode: 0o600, uid: 1000, gid: 1000 },
  { path: 'with space/.wh.file name.txt', content: '' },
  { path: 'bin/t3', content: 't3', mode: 0o755 },
  { path: 'bin/t3-hl', type: 'link', linkname: 'bin/t3' },
  { path: 'tmp/', type: 'directory', mode: 0o1777 },
  { path: 'sgid/', type: 'directory', mode: 0o2775, gid: 50 },
];

const h = (s: string) => `${Buffer.byteLength(s)} ${createHash('sha256').update(s).digest('hex').slice(0, 16)}`;
const deepDirs = DEEP.split('/').map((_, i, all) => `${all.slice(0, i + 1).join('/')} dir 0755 0:0`);

/** The merged tree, stated by hand: path type mode uid:gid [size hash | -> target | major,minor] [xattrs] [hardlink]. */
const EXPECTED = [
  '. dir 0755 0:0',
  ...deepDirs,
  `${DEEP}/deep.txt file 0644 0:0 ${h('deep')}`,
  'bin dir 0755 0:0',
  `bin/t3 file 0755 0:0 ${h('t3')} hardlink=bin/t3`,
  `bin/t3-hl file 0755 0:0 ${h('t3')} hardlink=bin/t3`,
  `bin/tool file 4755 0:0 ${h('tool v2')}`,
  'dev dir 0755 0:0',
  'dev/fifo fifo 0644 0:0',
  'dev/null char 0666 0:0 1,3',
  'empty dir 0700 0:0',
  'etc dir 0755 0:0',
  `etc/conf file 0600 1000:1000 ${h('conf v3')}`,
  `etc/noted file 0644 0:0 ${h('with xattr')} xattrs{user.note=hello xattr}`,
  'link-abs symlink 0777 0:0 -> /etc/conf',
  'link-dangling symlink 0777 0:0 -> nowhere/at all',
  'link-rel symlink 0777 0:0 -> bin/tool',
  'links dir 0755 0:0',
  `links/hl file 0644 0:0 ${h('hardlinked content')} hardlink=links/hl`,
  `links/target file 0644 0:0 ${h('hardlinked content')} hardlink=links/hl`,
  'opq dir 0755 0:0',
  `opq/new file 0644 0:0 ${h('n')}`,
  'sgid dir 2775 0:50',
  `swap-df file 0644 0:0 ${h('now a file')}`,
  'swap-fd dir 0755 0:0',
  `swap-fd/now-dir file 0644 0:0 ${h('d')}`,
  'tmp dir 1777 0:0',
  'with space dir 0755 0:0',
  `with space/stays.txt file 0644 0:0 ${h('stays')}`,
  'xdir dir 0755 0:0 xattrs{trusted.overlay.opaque=y}',
  `xdir/keep file 0644 0:0 ${h('keep me')}`,
  'ünïcødé dir 0755 0:0',
  `ünïcødé/日本語.txt file 0644 0:0 ${h('unicode')}`,
];

describe('a crafted union image mounts to the stated tree through overlay, btrfs and vfs', () => {
  let tmp: Tmpfs;
  let btrfs: LoopFs;
  let layout: string;
  const mountsBefore = mountPoints();
  const listings = new Map<string, string[]>();

  before(async () => {
    tmp = mountTmpfs('1g');
    btrfs = makeBtrfs('1g');
    layout = join(tmp.dir, 'layout');
    const image = makeImage({ layers: [await makeLayer(layer1, 'gzip'), await makeLayer(layer2, 'zstd'), await makeLayer(layer3, 'none')] });
    writeOciLayout(layout, [{ tag: 'crafted', image }]);
  });
  after(() => {
    btrfs?.cleanup();
    tmp?.cleanup();
    assert.deepEqual(mountPoints(), mountsBefore);
  });

  const DRIVERS = ['overlay', 'btrfs', 'vfs'];
  for (const driver of DRIVERS) {
    it(`${driver}: the mounted tree is exactly the stated one`, async () => {
      const env = { TSGRAPH_ROOT: join(driver === 'btrfs' ? btrfs.dir : tmp.dir, `root-${driver}`), TSGRAPH_DRIVER: driver };
      const pull = await runCli(['pull', `oci:${layout}:crafted`, '--quiet'], env);
      assert.equal(pull.code, 0, pull.stderr);
      const m = await runCli(['mount', 'localhost/layout:crafted', '--name', 'c1', '--json'], env);
      assert.equal(m.code, 0, m.stderr);
      const { path } = parseJsonOutput<{ path: string }>(m);
      try {
        const listing = listTree(path, { keepOverlayXattrs: true });
        listings.set(driver, listing);
        assert.deepEqual(listing, [...EXPECTED].sort(byPath));
      } finally {
        const u = await runCli(['umount', 'c1'], env);
        assert.equal(u.code, 0, u.stderr);
      }
    });
  }

  it('differential: overlay, btrfs and vfs listings are byte-identical', () => {
    assert.equal(listings.size, DRIVERS.length, 'every driver ran');
    const [first, ...rest] = DRIVERS.map((d) => listings.get(d)!.join('\n'));
    for (const other of rest) assert.equal(other, first);
  });
});

// listTree walks sorted names depth-first; sort the expectation the same way.
function byPath(a: string, b: string): number {
  const pa = a.split(' ')[0] === '.' ? [] : pathOf(a).split('/');
  const pb = b.split(' ')[0] === '.' ? [] : pathOf(b).split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}
function pathOf(line: string): string {
  // Paths may contain spaces: the type word (dir, file, …) follows the path.
  const m = /^(.*?) (dir|file|symlink|char|block|fifo|other) /.exec(line);
  return m ? m[1]! : line;
}
