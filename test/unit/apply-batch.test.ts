/**
 * native/apply-batch.cc and src/layer/apply-batch.ts: batched extraction on a
 * pool thread. The native call re-checks whatever it is handed (paths,
 * integers, data ranges, types) and refuses bad input synchronously without
 * touching the tree; it never follows a symlink (one planted between batches
 * in a parent position fails the op with ELOOP → TSG_UNSAFE_PATH, nothing
 * lands outside the root); O_EXCL refuses an existing name; owner, mode and
 * times come out as the synchronous path sets them (setuid survives the
 * chown). applyTar with batches on makes the same tree as with them off.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { TsgraphError } from '../../src/errors.js';
import { applyTar } from '../../src/layer/apply.js';
import { NativeBatch, applyBatchHooks } from '../../src/layer/apply-batch.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { aufsFormat, naiveFormat, overlayFormat, type WhiteoutFormat } from '../../src/layer/whiteout.js';
import { nativeApplyBatch } from '../../src/native.js';
import { listTree } from '../helpers/tree.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';
import { type RawEntry, rawTar } from '../layer/raw-tar.js';

const nb = () => nativeApplyBatch();
const C = () => nb().applyBatchConstants;

interface RawOp {
  kind: number;
  path: string | Buffer;
  link?: string | Buffer;
  data?: [number, number];
  createMode?: number;
  flags?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  sec?: number;
  nsec?: number;
}

/** Encodes ops as the native call takes them; fields can be overridden with anything. */
function encode(ops: RawOp[], override: (f: Float64Array, i: number) => void = () => {}): { ops: Float64Array; names: Buffer } {
  const c = C();
  const f = new Float64Array(ops.length * c.FIELDS);
  const parts: Buffer[] = [];
  let len = 0;
  const put = (v: string | Buffer) => {
    const b = Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1');
    parts.push(b);
    len += b.length;
    return [len - b.length, b.length] as const;
  };
  ops.forEach((op, i) => {
    const o = i * c.FIELDS;
    const [po, pl] = put(op.path);
    f[o + c.KIND] = op.kind;
    f[o + c.PATH_OFF] = po;
    f[o + c.PATH_LEN] = pl;
    if (op.link !== undefined) {
      const [lo, ll] = put(op.link);
      f[o + c.LINK_OFF] = lo;
      f[o + c.LINK_LEN] = ll;
    }
    f[o + c.DATA_OFF] = op.data?.[0] ?? 0;
    f[o + c.DATA_LEN] = op.data?.[1] ?? 0;
    f[o + c.CREATE_MODE] = op.createMode ?? 0o755;
    f[o + c.FLAGS] = op.flags ?? 0;
    f[o + c.MODE] = op.mode ?? 0;
    f[o + c.UID] = op.uid ?? 0;
    f[o + c.GID] = op.gid ?? 0;
    f[o + c.SEC] = op.sec ?? 0;
    f[o + c.NSEC] = op.nsec ?? 0;
    override(f, o);
  });
  return { ops: f, names: Buffer.concat(parts) };
}

function isCode(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof TsgraphError, `expected a TsgraphError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

/** `rel mtime` of every entry below `root` (names as bytes; listTree leaves times out). */
function mtimes(root: string, rel = ''): string[] {
  const out: string[] = [];
  const dir = Buffer.from(rel ? `${root}/${rel}` : root, 'latin1');
  for (const name of fs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[]) {
    const child = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1');
    const st = fs.lstatSync(Buffer.from(`${root}/${child}`, 'latin1'), { bigint: true });
    // Implicit parent dirs get the time they were made: only the tar's times can be compared.
    out.push(`${child} ${st.mtimeNs > 1_700_000_000_000_000_000n ? 'now' : st.mtimeNs}`);
    if (st.isDirectory()) out.push(...mtimes(root, child));
  }
  return out.sort();
}

describe('batched native apply', () => {
  let tmp: Tmpfs;
  let n = 0;
  const opened: number[] = [];
  before(() => {
    tmp = mountTmpfs('256m');
  });
  after(() => tmp?.cleanup());
  afterEach(() => {
    while (opened.length) fs.closeSync(opened.pop()!);
    applyBatchHooks.afterBatch = undefined;
    applyBatchHooks.limits = undefined;
  });
  const fresh = () => {
    const root = join(tmp.dir, `r${++n}`);
    fs.mkdirSync(root);
    return root;
  };
  const dirFd = (root: string) => {
    const fd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    opened.push(fd);
    return fd;
  };
  const run = (root: string, ops: RawOp[], data = Buffer.alloc(0)) => {
    const e = encode(ops);
    return nb().applyBatch(dirFd(root), e.ops, e.names, data);
  };

  it('creates files, dirs and symlinks with owner, then mode, then times (setuid survives the chown)', async () => {
    const c = C();
    const root = fresh();
    const data = Buffer.from('hello world');
    const all = c.OWNER | c.SET_MODE | c.SET_TIMES;
    const done = await run(
      root,
      [
        { kind: c.MKDIR, path: 'd', createMode: 0o700, flags: c.OWNER | c.SET_MODE, mode: 0o2750, uid: 1000, gid: 1001 },
        { kind: c.FILE, path: 'd/suid', data: [0, 5], flags: all, mode: 0o4755, uid: 1000, gid: 1000, sec: 1_700_000_000, nsec: 123_456_789 },
        { kind: c.FILE, path: 'empty', data: [5, 0], flags: all, mode: 0o600, uid: 0, gid: 0, sec: -1 },
        { kind: c.SYMLINK, path: 'd/ln', link: '/etc/passwd', flags: c.OWNER | c.SET_TIMES, uid: 7, gid: 8, sec: 1_600_000_000 },
        { kind: c.TIMES, path: 'd', flags: c.SET_TIMES, sec: 1_500_000_000 },
      ],
      data,
    );
    assert.equal(done, 5);
    const f = fs.lstatSync(join(root, 'd/suid'), { bigint: true });
    assert.equal(fs.readFileSync(join(root, 'd/suid'), 'utf8'), 'hello');
    assert.deepEqual([f.uid, f.gid, f.mode & 0o7777n], [1000n, 1000n, 0o4755n]);
    assert.equal(f.mtimeNs, 1_700_000_000_123_456_789n);
    assert.equal(f.atimeNs, 1_700_000_000_123_456_789n);
    const e = fs.lstatSync(join(root, 'empty'));
    assert.deepEqual([e.size, e.mode & 0o7777, e.mtimeMs], [0, 0o600, -1000]);
    const d = fs.lstatSync(join(root, 'd'));
    assert.deepEqual([d.isDirectory(), d.uid, d.gid, d.mode & 0o7777, d.mtimeMs], [true, 1000, 1001, 0o2750, 1_500_000_000_000]);
    const l = fs.lstatSync(join(root, 'd/ln'));
    assert.deepEqual([l.isSymbolicLink(), l.uid, l.gid, l.mtimeMs], [true, 7, 8, 1_600_000_000_000]);
    assert.equal(fs.readlinkSync(join(root, 'd/ln')), '/etc/passwd');
    // An existing directory's metadata (a directory entry over a directory).
    await run(root, [{ kind: c.DIR_META, path: 'd', flags: c.OWNER | c.SET_MODE, uid: 3, gid: 4, mode: 0o711 }]);
    assert.deepEqual([fs.lstatSync(join(root, 'd')).uid, fs.lstatSync(join(root, 'd')).mode & 0o7777], [3, 0o711]);
  });

  it('refuses bad input by itself, synchronously, touching nothing', () => {
    const c = C();
    const root = fresh();
    const fd = dirFd(root);
    const data = Buffer.alloc(16);
    const file = (path: string | Buffer, more: Partial<RawOp> = {}): RawOp => ({ kind: c.FILE, path, data: [0, 4], ...more });
    const badPaths: Array<string | Buffer> = ['', '/abs', '..', '../x', 'a/../b', 'a/..', '.', './a', 'a/./b', 'a//b', 'a/', Buffer.from('a\0b'), 'x'.repeat(256), `${'d/'.repeat(2048)}f`];
    for (const path of badPaths) {
      const e = encode([file(path)]);
      assert.throws(() => nb().applyBatch(fd, e.ops, e.names, data), (err: NodeJS.ErrnoException) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_VALUE', `path ${JSON.stringify(String(path)).slice(0, 40)}`);
    }
    const field = (name: keyof ReturnType<typeof C>, values: number[], op: RawOp = file('f')) => {
      for (const v of values) {
        const e = encode([op], (f, o) => {
          f[o + (C()[name] as number)] = v;
        });
        assert.throws(() => nb().applyBatch(fd, e.ops, e.names, data), (err: NodeJS.ErrnoException) => err instanceof RangeError && err.code === 'ERR_OUT_OF_RANGE', `${name} = ${v}`);
      }
    };
    field('KIND', [0, 6, -1, 1.5, NaN]);
    field('UID', [-1, 2 ** 32 - 1, 2 ** 32, 0.5, NaN, Infinity]);
    field('GID', [-1, 2 ** 32 - 1, 2 ** 40]);
    field('MODE', [0o10000, -1, 511.5]);
    field('CREATE_MODE', [0o1000, -1]);
    field('FLAGS', [8, -1, 1.5]);
    field('SEC', [8.65e12, -8.65e12, NaN, 0.25]);
    field('NSEC', [1e9, -1, 0.5]);
    field('PATH_OFF', [-1, 1e6, 2 ** 53]);
    field('PATH_LEN', [1e6, -1]);
    field('DATA_OFF', [13, 16.5, -1, 2 ** 60]);
    field('DATA_LEN', [17, 2 ** 53]);
    field('LINK_LEN', [1e6], { kind: c.SYMLINK, path: 's', link: 't' });
    // Shapes that make no sense: data on a dir, a link on a file, a mode on a symlink, times ops setting owners.
    const nonsense: RawOp[] = [
      { kind: c.MKDIR, path: 'd', data: [0, 1] },
      { kind: c.FILE, path: 'f', link: 'x' },
      { kind: c.SYMLINK, path: 's', link: 't', flags: c.SET_MODE },
      { kind: c.SYMLINK, path: 's', link: '' },
      { kind: c.SYMLINK, path: 's', link: Buffer.from('t\0u') },
      { kind: c.SYMLINK, path: 's', link: 'x'.repeat(4096) },
      { kind: c.TIMES, path: 'd', flags: c.OWNER | c.SET_TIMES },
    ];
    for (const op of nonsense) {
      const e = encode([op]);
      assert.throws(() => nb().applyBatch(fd, e.ops, e.names, data), (err: NodeJS.ErrnoException) => err.code === 'ERR_INVALID_ARG_VALUE' || err.code === 'ERR_OUT_OF_RANGE');
    }
    // One bad op refuses the whole batch before anything runs.
    const mixed = encode([file('fine'), file('../escape')]);
    assert.throws(() => nb().applyBatch(fd, mixed.ops, mixed.names, data), TypeError);
    // Wrong types and shapes.
    const good = encode([file('f')]);
    const bad: unknown[][] = [
      [-1, good.ops, good.names, data],
      [fd + 0.5, good.ops, good.names, data],
      ['3', good.ops, good.names, data],
      [fd, [...good.ops], good.names, data],
      [fd, new Int32Array(C().FIELDS), good.names, data],
      [fd, good.ops.subarray(1), good.names, data],
      [fd, good.ops, 'f', data],
      [fd, good.ops, good.names, 'data'],
      [fd, good.ops, good.names],
      [fd, new Float64Array((C().MAX_OPS + 1) * C().FIELDS), good.names, data],
    ];
    for (const args of bad) {
      assert.throws(() => (nb().applyBatch as (...a: unknown[]) => unknown)(...args), (err: NodeJS.ErrnoException) => /^ERR_/.test(err.code ?? ''));
    }
    // A root fd that is not a directory.
    fs.writeFileSync(join(tmp.dir, `plain${n}`), '');
    const plain = fs.openSync(join(tmp.dir, `plain${n}`), 'r');
    opened.push(plain);
    assert.throws(() => nb().applyBatch(plain, good.ops, good.names, data), (err: NodeJS.ErrnoException) => err.code === 'ENOTDIR');
    assert.deepEqual(fs.readdirSync(root), []);
  });

  it('copies the ops before it returns: changing them afterwards changes nothing', async () => {
    const c = C();
    const root = fresh();
    const e = encode([{ kind: c.FILE, path: 'kept', data: [0, 2], flags: c.SET_MODE, mode: 0o640 }]);
    const names = Buffer.from(e.names);
    const running = nb().applyBatch(dirFd(root), e.ops, names, Buffer.from('ok'));
    e.ops.fill(NaN);
    names.write('/etc', 0, 'latin1');
    assert.equal(await running, 1);
    assert.equal(fs.readFileSync(join(root, 'kept'), 'utf8'), 'ok');
    assert.equal(fs.lstatSync(join(root, 'kept')).mode & 0o7777, 0o640);
  });

  it('copies the data too: detaching (transferring) the Buffer while the batch runs changes no file', async () => {
    const c = C();
    const root = fresh();
    const N = 32;
    const SZ = 1 << 20;
    const data = Buffer.allocUnsafeSlow(N * SZ).fill(0x41);
    const ops: RawOp[] = Array.from({ length: N }, (_, i) => ({ kind: c.FILE, path: `f${String(i).padStart(3, '0')}`, data: [i * SZ, SZ] as [number, number] }));
    const running = run(root, ops, data);
    // The transfer detaches data's backing store; the clone's is dropped and reused by other bytes.
    let clone: ArrayBuffer | null = structuredClone(data.buffer, { transfer: [data.buffer] });
    assert.equal(data.length, 0);
    clone = null;
    const junk = Array.from({ length: 4 }, () => Buffer.allocUnsafeSlow(N * SZ).fill(0x42));
    assert.equal(await running, N);
    for (const name of fs.readdirSync(root)) {
      const b = fs.readFileSync(join(root, name));
      assert.equal(b.length, SZ, name);
      assert.ok(!b.some((x) => x !== 0x41), `${name} holds bytes that were never in the buffer`);
    }
    assert.equal(junk.length + (clone === null ? 0 : 1), 4);
  });

  it('over-long names fail alike with batches on and off, with a TSG code', async () => {
    const nameOf = (len: number) => {
      const parts: string[] = [];
      let n = 0;
      while (n + 201 < len) {
        parts.push('d'.repeat(200));
        n += 201;
      }
      parts.push('f'.repeat(len - n));
      return parts.join('/');
    };
    for (const [len, code] of [[4096, 'TSG_UNSAFE_PATH'], [4080, 'TSG_INVALID_LAYER']] as const) {
      const tar = rawTar([{ name: 'x', pax: [['path', nameOf(len)]], data: 'hi' }]);
      for (const batch of [false, true]) {
        const root = fresh();
        const { tar: s, tap, done } = openLayerTar(Readable.from([tar]), 'none');
        done.catch(() => {});
        await assert.rejects(applyTar(root, s, { format: overlayFormat, pax: tap.pax, batch }), (e: unknown) => e instanceof TsgraphError && e.code === code, `${len} batch=${batch}`);
      }
    }
  });

  it('never follows a symlink: in a parent position, as the name itself, or as the root of a times op', async () => {
    const c = C();
    const root = fresh();
    const outside = fresh();
    fs.writeFileSync(join(outside, 'target'), 'host');
    fs.symlinkSync(outside, join(root, 'up'));
    fs.symlinkSync(join(outside, 'target'), join(root, 'name'));
    fs.mkdirSync(join(root, 'real'));
    fs.symlinkSync('../up', join(root, 'real/rel'));
    const cases: Array<[RawOp, string]> = [
      [{ kind: c.FILE, path: 'up/f', data: [0, 1] }, 'ELOOP'],
      [{ kind: c.FILE, path: 'real/rel/f', data: [0, 1] }, 'ELOOP'],
      [{ kind: c.MKDIR, path: 'up/d' }, 'ELOOP'],
      [{ kind: c.SYMLINK, path: 'up/s', link: 'x' }, 'ELOOP'],
      [{ kind: c.TIMES, path: 'up/target', flags: c.SET_TIMES }, 'ELOOP'],
      [{ kind: c.DIR_META, path: 'up', flags: c.SET_MODE, mode: 0o777 }, 'ENOTDIR'],
      [{ kind: c.FILE, path: 'name', data: [0, 1] }, 'EEXIST'],
    ];
    for (const [op, code] of cases) {
      await assert.rejects(run(root, [op], Buffer.from('X')), (err: NodeJS.ErrnoException & { opIndex?: number }) => {
        assert.equal(err.code, code, `${String(op.path)}: ${err.message}`);
        assert.equal(err.opIndex, 0);
        return true;
      });
    }
    assert.deepEqual(fs.readdirSync(outside), ['target']);
    assert.equal(fs.readFileSync(join(outside, 'target'), 'utf8'), 'host');
    assert.equal(fs.lstatSync(outside).mode & 0o7777, 0o755);
  });

  it('O_EXCL: an existing name fails the op; earlier ops stay done, later ones never run', async () => {
    const c = C();
    const root = fresh();
    fs.writeFileSync(join(root, 'there'), 'old');
    const ops: RawOp[] = [
      { kind: c.FILE, path: 'first', data: [0, 3] },
      { kind: c.FILE, path: 'there', data: [0, 3] },
      { kind: c.FILE, path: 'never', data: [0, 3] },
    ];
    await assert.rejects(run(root, ops, Buffer.from('new')), (err: NodeJS.ErrnoException & { opIndex?: number; completed?: number }) => {
      assert.deepEqual([err.code, err.syscall, err.opIndex, err.completed], ['EEXIST', 'openat2', 1, 1]);
      return true;
    });
    assert.equal(fs.readFileSync(join(root, 'there'), 'utf8'), 'old');
    assert.deepEqual(fs.readdirSync(root).sort(), ['first', 'there']);
    await assert.rejects(run(root, [{ kind: c.MKDIR, path: 'first' }]), { code: 'EEXIST' });
  });

  it('a symlink swapped into a parent position between batches is not followed (TSG_UNSAFE_PATH), nothing lands outside', async () => {
    const root = fresh();
    const outside = fresh();
    let swapped = false;
    applyBatchHooks.limits = { ops: 1, bytes: 0 };
    applyBatchHooks.afterBatch = (r) => {
      // After the batch that made `a`: replace it with a symlink out of the root.
      if (r !== root || swapped || !fs.existsSync(join(root, 'a'))) return;
      fs.rmdirSync(join(root, 'a'));
      fs.symlinkSync(outside, join(root, 'a'));
      swapped = true;
    };
    const tar = rawTar([
      { name: 'a/', type: '5', mode: 0o755 },
      { name: 'b', data: 'one op per batch' },
      { name: 'a/evil', data: 'must not escape' },
      { name: 'a/sub/', type: '5' },
    ]);
    const { tar: stream, tap, done } = openLayerTar(Readable.from([tar]), 'none');
    done.catch(() => {});
    await assert.rejects(applyTar(root, stream, { format: overlayFormat, pax: tap.pax, batch: true }), isCode('TSG_UNSAFE_PATH'));
    stream.destroy();
    assert.ok(swapped, 'the hook ran between batches');
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  it('a full disk inside a batch is TSG_NO_SPACE', async () => {
    const small = mountTmpfs('1m');
    try {
      const entries: RawEntry[] = [];
      for (let i = 0; i < 40; i++) entries.push({ name: `f${i}`, data: Buffer.alloc(64 << 10, i) });
      const { tar, tap, done } = openLayerTar(Readable.from([rawTar(entries)]), 'none');
      done.catch(() => {});
      await assert.rejects(applyTar(small.dir, tar, { format: overlayFormat, pax: tap.pax, batch: true }), isCode('TSG_NO_SPACE'));
      tar.destroy();
    } finally {
      small.cleanup();
    }
  });

  it('NativeBatch: flush makes the queued tree real; abandon waits for the running batch', async () => {
    const root = fresh();
    const batch = new NativeBatch(root, { ops: 2, bytes: 1 << 20 });
    const meta = { owner: true, uid: 5, gid: 6, perm: 0o644, mtime: new Date(86_400_000) };
    await batch.mkdir('d', 'd', 0o755, { ...meta, perm: 0o755, mtime: undefined });
    for (let i = 0; i < 5; i++) {
      await batch.file(`d/f${i}`, `d/f${i}`, 3, meta, async (into) => {
        into.write(`f${i}!`, 'latin1');
      });
    }
    // Buffers grow from small to the limit, then the batch goes out: contents stay intact across both.
    for (let i = 0; i < 5; i++) {
      await batch.file(`d/big${i}`, `d/big${i}`, 400 << 10, meta, async (into) => void into.fill(0x61 + i));
    }
    await batch.flush();
    for (let i = 0; i < 5; i++) assert.ok(fs.readFileSync(join(root, `d/big${i}`)).equals(Buffer.alloc(400 << 10, 0x61 + i)), `big${i}`);
    assert.deepEqual(fs.readdirSync(join(root, 'd')).filter((f) => f.startsWith('f')).sort(), ['f0', 'f1', 'f2', 'f3', 'f4']);
    assert.equal(fs.readFileSync(join(root, 'd/f3'), 'utf8'), 'f3!');
    assert.equal(fs.lstatSync(join(root, 'd/f3')).mtimeMs, 86_400_000);
    await batch.file('d/f0', 'd/f0', 1, meta, async (into) => void into.write('x'));
    await assert.rejects(batch.flush(), isCode('TSG_INVALID_LAYER'));
    await batch.mkdir('e', 'e', 0o755, { ...meta, mtime: undefined });
    await batch.abandon();
    assert.ok(!fs.existsSync(join(root, 'e')), 'unsent ops are dropped');
  });

  describe('applyTar makes the same tree with and without batches', () => {
    const mtime = 1_650_000_000;
    const layer: RawEntry[] = [
      { name: './', type: '5', mode: 0o755, mtime: 1_000 },
      { name: 'etc/', type: '5', mode: 0o755, mtime },
      { name: 'etc/passwd', data: 'root:x:0:0', mode: 0o644, mtime },
      { name: 'usr/bin/su', data: 'elf', mode: 0o4755, uid: 0, gid: 0, mtime },
      { name: 'usr/bin/newgrp', data: 'elf', mode: 0o2755, uid: 1000, gid: 50, mtime },
      { name: 'usr/bin/ping', data: 'elf', mode: 0o755, pax: [['SCHILY.xattr.user.cap', 'x']], mtime },
      { name: 'usr/lib/big', data: Buffer.alloc((1 << 20) + 5, 7), mode: 0o600, mtime },
      { name: 'usr/lib/link', type: '1', linkname: 'usr/bin/su', mtime },
      { name: 'usr/lib/sym', type: '2', linkname: '../bin/su', uid: 3, gid: 4, mtime },
      { name: 'tmp/', type: '5', mode: 0o1777, mtime },
      { name: 'tmp/', type: '5', mode: 0o1777, uid: 9, mtime },
      { name: 'var/.wh.gone', mtime },
      { name: '.wh.gone', mtime },
      { name: 'var/replaced', data: 'one', mtime },
      { name: 'var/replaced', data: 'two', mtime },
      { name: 'var/replaced/', type: '5', mtime },
      { name: 'opt/x/y/z', data: '', mtime },
      { name: Buffer.from('nämé-✓', 'utf8'), data: 'bytes', mtime },
      { name: 'dev/null', type: '3', devmajor: 1, devminor: 3, mtime },
      // A directory replaced by a symlink out of the root: its time (and its children's) is not set through it.
      { name: 'swap/', type: '5', mtime: 1_000 },
      { name: 'swap/in/', type: '5', mtime: 2_000 },
      { name: 'swap', type: '2', linkname: '/etc', mtime },
      { name: 'was-dir/', type: '5', mtime: 3_000 },
      { name: 'was-dir', data: 'now a file', mtime },
    ];
    /** What a vfs/btrfs layer starts from: its parent's tree (the applier must lstat, not assume). */
    const lower = (root: string) => {
      fs.mkdirSync(join(root, 'etc'), { mode: 0o700 });
      fs.chownSync(join(root, 'etc'), 5, 5);
      fs.writeFileSync(join(root, 'etc/passwd'), 'lower');
      fs.writeFileSync(join(root, 'etc/keep'), 'lower');
      fs.symlinkSync('/tmp', join(root, 'usr'));
      fs.writeFileSync(join(root, 'var'), 'a file where the layer has a directory');
      fs.mkdirSync(join(root, 'tmp'));
      fs.mkdirSync(join(root, 'opt/x'), { recursive: true });
      fs.writeFileSync(join(root, 'gone'), '');
      fs.lutimesSync(join(root, 'etc'), 5, 5);
    };
    for (const format of [overlayFormat, naiveFormat, aufsFormat] as WhiteoutFormat[]) {
      for (const [ops, withLower] of [[1, false], [3, false], [1024, false], [1, true], [1024, true]] as const) {
        it(`${format.name}, ${ops} ops per batch${withLower ? ', over a lower tree' : ''}`, async () => {
          applyBatchHooks.limits = { ops, bytes: 0 };
          const trees: string[][] = [];
          for (const batch of [false, true]) {
            const root = fresh();
            if (withLower) lower(root);
            const { tar, tap, done } = openLayerTar(Readable.from([rawTar(layer)]), 'none');
            const result = await applyTar(root, tar, { format, pax: tap.pax, batch });
            await done;
            assert.equal(result.entries, layer.length);
            trees.push([...listTree(root, { keepOverlayXattrs: true }), ...mtimes(root), `size ${result.size}`, `root ${fs.lstatSync(root).mtimeMs}`]);
          }
          assert.deepEqual(trees[1], trees[0]);
        });
      }
    }
  });
});
