/**
 * Issue 8, apply side: each defect through the production path (TarTap →
 * applyTar) on a fresh tmpfs, for every whiteout format where it matters.
 *   defect 2: owner, mode, then xattrs (security.capability survives chown);
 *   defect 3: nothing after the end-of-archive marker is applied;
 *   defect 6: whiteouts/opaque markers act on lower layers only, in any order;
 *   defect 7: names and link targets are bytes;
 *   defect 8: numeric header fields are integers in range before any syscall.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/digest.js';
import { TsgraphError } from '../../src/errors.js';
import { LayerApplier, applyTar } from '../../src/layer/apply.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { aufsFormat, naiveFormat, overlayFormat, type WhiteoutFormat } from '../../src/layer/whiteout.js';
import { getXattr } from '../../src/layer/xattr.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';
import { type RawEntry, rawHeader, rawTar } from './raw-tar.js';

const formats: WhiteoutFormat[] = [overlayFormat, naiveFormat, aufsFormat];
const latin1 = (s: string) => Buffer.from(s, 'latin1');
/** A valid v2 file capability: cap_net_raw + cap_setfcap permitted, effective. Not UTF-8 (0x80). */
export const CAPABILITY = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

function isCode(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof TsgraphError, `expected a TsgraphError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

/** The production path: TarTap (diffId, end marker) → applyTar. Returns the tap's diffId. */
async function apply(root: string, bytes: Buffer, format: WhiteoutFormat = naiveFormat): Promise<string> {
  const { tar, tap, done } = openLayerTar(Readable.from([bytes]), 'none');
  done.catch(() => {});
  try {
    await applyTar(root, tar, { format, pax: tap.pax });
    await done;
    return tap.digest;
  } finally {
    tar.destroy();
  }
}

const names = (dir: string) => (fs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('latin1')).sort();

describe('layer apply hardening', () => {
  let tmp: Tmpfs;
  let n = 0;
  before(() => {
    tmp = mountTmpfs('256m');
  });
  after(() => tmp?.cleanup());
  const fresh = () => {
    const root = join(tmp.dir, `r${++n}`);
    fs.mkdirSync(root);
    return root;
  };

  describe('defect 3: the end-of-archive marker ends the layer', () => {
    it('refuses an entry hidden after the marker and writes nothing of it', async () => {
      const hidden = rawTar([{ name: 'hidden', data: 'you cannot see me' }]);
      const bytes = rawTar([{ name: 'a', data: 'A' }], hidden);
      const root = fresh();
      await assert.rejects(apply(root, bytes), isCode('TSG_INVALID_LAYER'));
      assert.equal(fs.existsSync(join(root, 'hidden')), false);
      // applyTar alone (no TarTap in front, as the conformance suite calls drivers) refuses too.
      const root2 = fresh();
      await assert.rejects(applyTar(root2, Readable.from([bytes]), { format: naiveFormat }), isCode('TSG_INVALID_LAYER'));
      assert.equal(fs.existsSync(join(root2, 'hidden')), false);
    });

    it('refuses a header after a single zero block (as Go archive/tar does)', async () => {
      const one = Buffer.concat([rawTar([{ name: 'a', data: 'A' }]).subarray(0, 1024), Buffer.alloc(512), rawTar([{ name: 'b' }])]);
      await assert.rejects(apply(fresh(), one), isCode('TSG_INVALID_LAYER'));
    });

    it('accepts zero padding after the marker, and the diffId covers every byte as stored', async () => {
      const bytes = rawTar([{ name: 'a', data: 'A' }], Buffer.alloc(10 * 1024 + 7));
      const root = fresh();
      assert.equal(await apply(root, bytes), sha256(bytes));
      assert.equal(fs.readFileSync(join(root, 'a'), 'utf8'), 'A');
    });
  });

  describe('defect 7: names are bytes', () => {
    const cafe = latin1('caf\xe9');
    const cafe2 = latin1('caf\xe8');
    const utf8 = Buffer.from('café', 'utf8');
    const target = latin1('t\xe9\xff/x');
    const expectBytes = (root: string) => {
      assert.deepEqual(names(root), ['caf\xe8', 'caf\xe9', 'caf\xc3\xa9', 'hl\xe9', 'l\xe9nk'].sort());
      assert.equal(fs.readFileSync(Buffer.concat([latin1(`${root}/`), cafe]), 'utf8'), 'e-acute');
      assert.equal(fs.readFileSync(Buffer.concat([latin1(`${root}/`), cafe2]), 'utf8'), 'e-grave');
      assert.equal(fs.readFileSync(join(root, 'café'), 'utf8'), 'utf-8');
      assert.deepEqual(fs.readlinkSync(latin1(`${root}/l\xe9nk`), { encoding: 'buffer' }), target);
      assert.equal(fs.statSync(latin1(`${root}/hl\xe9`)).ino, fs.statSync(Buffer.concat([latin1(`${root}/`), cafe])).ino);
    };

    it('keeps ustar names and link targets byte-exact', async () => {
      const root = fresh();
      await apply(root, rawTar([
        { name: cafe, data: 'e-acute' },
        { name: cafe2, data: 'e-grave' },
        { name: utf8, data: 'utf-8' },
        { name: latin1('l\xe9nk'), type: '2', linkname: target },
        { name: latin1('hl\xe9'), type: '1', linkname: cafe },
      ]));
      expectBytes(root);
    });

    it('keeps PAX path/linkpath byte-exact', async () => {
      const root = fresh();
      await apply(root, rawTar([
        { name: 'x1', pax: [['path', cafe]], data: 'e-acute' },
        { name: 'x2', pax: [['path', cafe2]], data: 'e-grave' },
        { name: 'x3', pax: [['path', utf8]], data: 'utf-8' },
        { name: 'x4', type: '2', linkname: 'nope', pax: [['path', latin1('l\xe9nk')], ['linkpath', target]] },
        { name: 'x5', type: '1', linkname: 'nope', pax: [['path', latin1('hl\xe9')], ['linkpath', cafe]] },
      ]));
      expectBytes(root);
    });

    it('keeps GNU long names byte-exact', async () => {
      const long = latin1(`${'d\xe9'.repeat(60)}`);
      const root = fresh();
      await apply(root, Buffer.concat([rawTar([{ name: '././@LongLink', type: 'L', data: Buffer.concat([long, Buffer.from([0])]) }]).subarray(0, 1024), rawTar([{ name: 'short', data: 'long' }])]));
      assert.deepEqual(names(root), [long.toString('latin1')]);
    });

    for (const format of formats) {
      it(`whites out one of two names that UTF-8 would merge (${format.name})`, async () => {
        const root = fresh();
        if (format !== overlayFormat && format !== aufsFormat) {
          fs.writeFileSync(Buffer.concat([latin1(`${root}/`), cafe]), 'lower');
        }
        await apply(root, rawTar([{ name: cafe2, data: 'mine' }, { name: latin1('.wh.caf\xe9') }]), format);
        const got = names(root);
        assert.ok(got.includes('caf\xe8'), got.join(','));
        if (format === naiveFormat) assert.deepEqual(got, ['caf\xe8']);
        if (format === overlayFormat) assert.ok(fs.lstatSync(Buffer.concat([latin1(`${root}/`), cafe])).isCharacterDevice());
        if (format === aufsFormat) assert.ok(got.includes('.wh.caf\xe9'));
      });
    }
  });

  describe('defect 8: numeric header fields are integers in range', () => {
    const big = (n: bigint) => {
      const b = Buffer.alloc(8);
      b[0] = 0x80;
      for (let i = 7; i > 0; i--, n >>= 8n) b[i] = Number(n & 0xffn);
      return b;
    };
    const cases: Array<[string, RawEntry, string]> = [
      ['a devmajor of garbage (tar-stream: NaN)', { name: 'c', type: '3', raw: { devmajor: Buffer.from('zzzzzzz\0') } }, 'TSG_INVALID_LAYER'],
      ['a devmajor of 2^32 (wraps to 0)', { name: 'c', type: '3', raw: { devmajor: big(1n << 32n) } }, 'TSG_INVALID_LAYER'],
      ['a devmajor past 12 bits', { name: 'c', type: '4', devmajor: 0x1000, devminor: 1 }, 'TSG_INVALID_LAYER'],
      ['a devminor past 20 bits', { name: 'c', type: '4', devmajor: 1, devminor: 0x100000 }, 'TSG_INVALID_LAYER'],
      ['a base-256 field with a bad first byte', { name: 'c', type: '3', raw: { devminor: Buffer.from([0x81, 0, 0, 0, 0, 0, 0, 1]) } }, 'TSG_INVALID_LAYER'],
      ['a mode of garbage', { name: 'f', raw: { mode: Buffer.from('07z7\0') } }, 'TSG_INVALID_LAYER'],
      ['a uid of garbage', { name: 'f', raw: { uid: Buffer.from('12 34\0') } }, 'TSG_INVALID_LAYER'],
      ['a size of garbage', { name: 'f', raw: { size: Buffer.from('1x\0') } }, 'TSG_INVALID_LAYER'],
      ['a negative size', { name: 'f', raw: { size: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]) } }, 'TSG_INVALID_LAYER'],
      ['an mtime of garbage', { name: 'f', raw: { mtime: Buffer.from('yesterday\0') } }, 'TSG_INVALID_LAYER'],
      ['a PAX uid of garbage', { name: 'f', pax: [['uid', '1e3']] }, 'TSG_INVALID_LAYER'],
      ['a PAX uid past 32 bits', { name: 'f', pax: [['uid', String(2 ** 32)]] }, 'TSG_INVALID_LAYER'],
      ['a PAX gid that is negative', { name: 'f', pax: [['gid', '-1']] }, 'TSG_INVALID_LAYER'],
      ['a PAX mtime of garbage', { name: 'f', pax: [['mtime', '12abc']] }, 'TSG_INVALID_LAYER'],
      ['a PAX size of garbage', { name: 'f', data: 'abc', pax: [['size', '3x']] }, 'TSG_INVALID_LAYER'],
      ['a symlink with a size (readers disagree where the next header is)', { name: 's', type: '2', linkname: 't', size: 512, data: Buffer.alloc(512) }, 'TSG_INVALID_LAYER'],
      ['a malformed PAX record', { name: 'f', pax: [['path', 'x']] }, 'TSG_INVALID_LAYER'],
    ];
    for (const [what, entry, code] of cases) {
      it(`refuses ${what}`, async () => {
        let bytes = rawTar([entry]);
        if (what === 'a malformed PAX record') bytes = Buffer.from(bytes.toString('latin1').replace('path=x\n', 'path=x\0'), 'latin1');
        const root = fresh();
        await assert.rejects(apply(root, bytes), isCode(code));
        assert.deepEqual(fs.readdirSync(root), [], 'nothing was made');
      });
    }

    it('refuses numeric fields that GNU tar/Go and tar-stream would read differently (no hidden entry, no hidden setuid root)', async () => {
      // "\0 0000001000": GNU tar and Go trim both ends (512), tar-stream stops at the space (0).
      // Read as 512, the next header is file data: `hidden` would be invisible to every scanner.
      const hidden = rawHeader({ name: 'hidden' }, 0);
      const framed = rawTar([{ name: 'innocent', raw: { size: Buffer.from('\0 0000001000', 'latin1') }, size: 0 }, { name: 'after' }]);
      const bytes = Buffer.concat([framed.subarray(0, 512), hidden, framed.subarray(512)]);
      const root = fresh();
      await assert.rejects(apply(root, bytes), isCode('TSG_INVALID_LAYER'));
      assert.deepEqual(fs.readdirSync(root), []);
      // "\0 001750": uid 1000 to them, 0 to tar-stream: a setuid file that is root's only for us.
      const setuid = rawTar([{ name: 'su', mode: 0o4755, raw: { uid: Buffer.from('\0 001750', 'latin1') } }]);
      await assert.rejects(apply(fresh(), setuid), isCode('TSG_INVALID_LAYER'));
      // Forms every reader agrees on still work: leading NULs, leading spaces, a trailing space.
      const fine = rawTar([
        { name: 'a', raw: { uid: Buffer.from('\x001750\0', 'latin1') } },
        { name: 'b', raw: { uid: Buffer.from('   1750 ', 'latin1') } },
      ]);
      const ok = fresh();
      await apply(ok, fine);
      assert.equal(fs.lstatSync(join(ok, 'a')).uid, 1000);
      assert.equal(fs.lstatSync(join(ok, 'b')).uid, 1000);
    });

    it('refuses a global PAX header that sets a path', async () => {
      const bytes = Buffer.concat([rawTar([{ name: 'g', type: 'g', data: '16 path=global\n' }]).subarray(0, 1024), rawTar([{ name: 'f' }])]);
      await assert.rejects(apply(fresh(), bytes), isCode('TSG_INVALID_LAYER'));
    });

    it('the applier itself refuses NaN and 2^32 device numbers before mknod (no scanner in front)', async () => {
      for (const devmajor of [NaN, 2 ** 32, -1, 0.5]) {
        const root = fresh();
        const applier = new LayerApplier(root, { format: overlayFormat });
        const header = { name: 'c', type: 'character-device', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: new Date(0), devmajor, devminor: 0 } as const;
        await assert.rejects(applier.entry(header as never, Readable.from([])), isCode('TSG_INVALID_LAYER'));
        assert.deepEqual(fs.readdirSync(root), []);
      }
    });

    it('still makes real devices and refuses char 0/0', async () => {
      const root = fresh();
      await apply(root, rawTar([{ name: 'null', type: '3', devmajor: 1, devminor: 3 }, { name: 'big', type: '4', devmajor: 0xfff, devminor: 0xfffff }]));
      assert.ok(fs.lstatSync(join(root, 'null')).isCharacterDevice());
      assert.ok(fs.lstatSync(join(root, 'big')).isBlockDevice());
      await assert.rejects(apply(fresh(), rawTar([{ name: 'wh', type: '3' }])), isCode('TSG_UNSAFE_PATH'));
    });
  });

  describe('defect 2: security.capability survives the chown', () => {
    for (const format of formats) {
      it(`keeps a binary file capability on a non-root file (${format.name})`, async () => {
        const root = fresh();
        await apply(root, rawTar([
          { name: 'ping', data: 'binary', mode: 0o755, uid: 1000, gid: 1000, pax: [['SCHILY.xattr.security.capability', CAPABILITY], ['SCHILY.xattr.user.note', 'x']] },
          { name: 'dir', type: '5', uid: 1000, gid: 1000, mode: 0o2755, pax: [['SCHILY.xattr.user.dir', 'd']] },
        ]), format);
        const st = fs.statSync(join(root, 'ping'));
        assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1000, 0o755]);
        assert.deepEqual(getXattr(join(root, 'ping'), 'security.capability'), CAPABILITY);
        assert.equal(getXattr(join(root, 'dir'), 'user.dir')?.toString(), 'd');
        assert.equal(fs.statSync(join(root, 'dir')).mode & 0o7777, 0o2755);
      });
    }
  });

  describe('sibling of defect 6: hardlinks point only at entries of their own layer', () => {
    for (const format of formats) {
      it(`refuses a link to a lower file, to a whiteout and to a whiteout marker (${format.name})`, async () => {
        const bad: RawEntry[][] = [
          [{ name: 'hl', type: '1', linkname: 'lower' }],
          [{ name: '.wh.gone' }, { name: 'hl', type: '1', linkname: 'gone' }],
          [{ name: '.wh.gone' }, { name: 'hl', type: '1', linkname: '.wh.gone' }],
          [{ name: 'd/f', data: 'x' }, { name: 'hl', type: '1', linkname: 'd' }],
        ];
        for (const entries of bad) {
          const root = fresh();
          // vfs/btrfs have the lower tree in the layer root; overlay and aufs do not.
          if (format === naiveFormat) fs.writeFileSync(join(root, 'lower'), 'lower');
          await assert.rejects(apply(root, rawTar(entries), format), (e: unknown) => e instanceof TsgraphError && /INVALID_LAYER|UNSAFE_PATH/.test(e.code), JSON.stringify(entries));
          assert.equal(fs.existsSync(join(root, 'hl')), false);
        }
        const ok = fresh();
        await apply(ok, rawTar([{ name: 'f', data: 'x' }, { name: 'hl', type: '1', linkname: './f' }]), format);
        assert.equal(fs.statSync(join(ok, 'hl')).ino, fs.statSync(join(ok, 'f')).ino);
      });
    }
  });

  describe('defect 6: whiteouts act on lower layers only, whatever the tar order', () => {
    /** The lower tree, as vfs/btrfs copy it into the new layer before applying (naive format). */
    const lower = (root: string) => {
      for (const d of ['x', 'd', 'd/sub', 'z']) fs.mkdirSync(join(root, d));
      for (const f of ['x/old', 'd/sub/old', 'd/other', 'z/old']) fs.writeFileSync(join(root, f), 'lower');
    };
    const upper = rawTar([
      { name: '.wh.x' },
      { name: 'x/', type: '5' },
      { name: 'x/new', data: 'new' },
      { name: 'd/sub/new', data: 'new' },
      { name: 'd/.wh..wh..opq' },
      { name: 'z/', type: '5' },
      { name: 'z/mine', data: 'mine' },
      { name: '.wh.z' },
      { name: 'w/.wh.gone' },
      { name: '.wh.w' },
    ]);
    const opaque = (root: string, rel: string) => getXattr(join(root, rel), 'trusted.overlay.opaque')?.toString();

    it('naive: the layer keeps its own entries, lower ones go', async () => {
      const root = fresh();
      lower(root);
      await apply(root, upper, naiveFormat);
      assert.deepEqual(names(join(root, 'x')), ['new']);
      assert.deepEqual(names(join(root, 'd')), ['sub']);
      assert.deepEqual(names(join(root, 'd/sub')), ['new']);
      assert.deepEqual(names(join(root, 'z')), ['mine']);
      assert.deepEqual(names(join(root, 'w')), []);
    });

    it('overlay: a directory made in place of a whiteout is opaque; no device is left', async () => {
      const root = fresh();
      await apply(root, upper, overlayFormat);
      assert.ok(fs.lstatSync(join(root, 'x')).isDirectory());
      assert.equal(opaque(root, 'x'), 'y');
      assert.deepEqual(names(join(root, 'x')), ['new']);
      assert.equal(opaque(root, 'd'), 'y');
      assert.deepEqual(names(join(root, 'd/sub')), ['new']);
      assert.equal(opaque(root, 'z'), 'y', 'a whiteout after the layer\'s own dir hides only the lower one');
      assert.deepEqual(names(join(root, 'z')), ['mine']);
      assert.ok(fs.lstatSync(join(root, 'w')).isDirectory());
      assert.equal(opaque(root, 'w'), 'y');
    });

    it('aufs: the new directory carries the opaque marker and no whiteout is left beside it', async () => {
      const root = fresh();
      await apply(root, upper, aufsFormat);
      assert.deepEqual(names(root).filter((e) => e.startsWith('.wh.')), []);
      assert.deepEqual(names(join(root, 'x')), ['.wh..wh..opq', 'new']);
      assert.deepEqual(names(join(root, 'd')), ['.wh..wh..opq', 'sub']);
      assert.deepEqual(names(join(root, 'z')), ['.wh..wh..opq', 'mine']);
    });
  });
});
