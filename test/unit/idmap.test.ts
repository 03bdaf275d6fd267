/**
 * Idmapped mounts (issue 10): the native side re-checks every argument it
 * is handed (maps well-formed and non-overlapping, fds that are user
 * namespaces, known attribute bits, layer dirs relative and never through
 * a symlink or out of the idmapped mount); user namespaces come from maps,
 * a path or an fd, and a caller's fd is never closed; an idmapped bind
 * shows owners through the maps; an idmapped overlay (idmapped layers, the
 * overlay itself cannot be) is writable, and what overlay itself makes goes
 * to a spare id, never to a container id.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMountPoint, mount, readMountInfo, unmount } from '../../src/mount/index.js';
import { nativeIdmap, openIdmap, parseIdMapping, spareId } from '../../src/mount/idmap.js';
import { checkMountOptions } from '../../src/mount/options.js';
import { idmapFromFlags } from '../../src/cli/commands/mount.js';
import { nativeFs } from '../../src/native.js';
import { mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';

const n = nativeIdmap();
const fsn = nativeFs();
const MAP = [0, 100000, 65536];

type ArgCode = 'ERR_INVALID_ARG_VALUE' | 'ERR_OUT_OF_RANGE' | 'ERR_INVALID_ARG_TYPE' | 'EINVAL' | 'EBADF' | 'ENOENT' | 'ENOTDIR' | 'ELOOP';

function refuses(fn: () => unknown, code: ArgCode, what: string): void {
  assert.throws(fn, (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return true;
  }, what);
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('idmap: native argument checks', () => {
  it('usernsCreate refuses malformed maps before any clone', () => {
    const cases: Array<[unknown, ArgCode, string]> = [
      ['0 100000 1', 'ERR_INVALID_ARG_TYPE', 'a string'],
      [[], 'ERR_OUT_OF_RANGE', 'empty'],
      [[0, 1], 'ERR_OUT_OF_RANGE', 'not triples'],
      [Array.from({ length: 341 * 3 }, (_, i) => (i % 3 === 2 ? 1 : Math.floor(i / 3) * 2)), 'ERR_OUT_OF_RANGE', '341 lines'],
      [[0, NaN, 1], 'ERR_OUT_OF_RANGE', 'NaN'],
      [[0, 1.5, 1], 'ERR_OUT_OF_RANGE', 'a fraction'],
      [[-1, 0, 1], 'ERR_OUT_OF_RANGE', 'negative'],
      [[0, 2 ** 32, 1], 'ERR_OUT_OF_RANGE', '2^32 (would wrap to 0)'],
      [[0, 100000, 0], 'ERR_OUT_OF_RANGE', 'size 0'],
      [[0, 4294967294, 2], 'ERR_OUT_OF_RANGE', 'a range past 2^32-2'],
      [[0, 100000, 10, 5, 200000, 10], 'ERR_OUT_OF_RANGE', 'container ranges overlap'],
      [[0, 100000, 10, 20, 100005, 10], 'ERR_OUT_OF_RANGE', 'host ranges overlap'],
      [[0, '1', 1], 'ERR_INVALID_ARG_TYPE', 'a string id'],
      [Array.from({ length: 200 * 3 }, (_, i) => (i % 3 === 2 ? 1 : 4000000000 + Math.floor(i / 3))), 'ERR_OUT_OF_RANGE', 'more than one page of text'],
    ];
    for (const [map, code, what] of cases) {
      refuses(() => n.usernsCreate(map as number[], MAP), code, `uid map: ${what}`);
      refuses(() => n.usernsCreate(MAP, map as number[]), code, `gid map: ${what}`);
    }
  });

  it('only user namespace fds pass as namespaces', () => {
    const file = fs.openSync('/etc/passwd', 'r');
    const net = fs.openSync('/proc/self/ns/net', 'r');
    try {
      refuses(() => n.usernsCheck(file), 'EINVAL', 'a regular file');
      refuses(() => n.usernsCheck(net), 'EINVAL', 'a network namespace');
      refuses(() => n.usernsCheck(-1), 'ERR_OUT_OF_RANGE', '-1');
      refuses(() => n.usernsCheck(1.5), 'ERR_OUT_OF_RANGE', '1.5');
      refuses(() => n.usernsCheck('3' as unknown as number), 'ERR_INVALID_ARG_TYPE', 'a string');
      refuses(() => n.usernsOpen('/proc/self/ns/net'), 'EINVAL', 'open of a network namespace');
      refuses(() => n.usernsOpen('/etc/passwd'), 'EINVAL', 'open of a file');
      // A device is never opened for real (opening /dev/watchdog arms it): refused by its filesystem first.
      assert.throws(() => n.usernsOpen('/dev/null'), /not a namespace file \(nsfs\)/);
      refuses(() => n.usernsOpen('/proc/self/ns/user\0x'), 'ERR_INVALID_ARG_VALUE', 'a NUL');
      refuses(() => n.usernsOpen('/nonexistent/ns'), 'ENOENT', 'missing');
      refuses(() => n.usernsMaps(file), 'EINVAL', 'maps of a file');
    } finally {
      fs.closeSync(file);
      fs.closeSync(net);
    }
    const closed = fs.openSync('/proc/self/ns/user', 'r');
    fs.closeSync(closed);
    refuses(() => n.usernsCheck(closed), 'EBADF', 'a closed fd');
  });

  it('a namespace made from maps has exactly those maps (read back by a child that joins it)', () => {
    const fd = n.usernsCreate([0, 100000, 65536, 65536, 300000, 10], [0, 200000, 1000]);
    try {
      n.usernsCheck(fd);
      assert.deepEqual(n.usernsMaps(fd), { uidMap: [0, 100000, 65536, 65536, 300000, 10], gidMap: [0, 200000, 1000] });
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('idmap: mounts', () => {
  let tmp: Tmpfs;
  let ns: number;
  before(() => {
    tmp = mountTmpfs('64m');
    ns = n.usernsCreate(MAP, MAP);
  });
  after(() => {
    fs.closeSync(ns);
    const left = readMountInfo().filter((m) => m.mountPoint.startsWith(`${tmp.dir}/`));
    tmp.cleanup();
    assert.deepEqual(left.map((m) => m.mountPoint), [], 'every mount made by the suite is gone');
  });

  function tree(name: string): { root: string; target: string } {
    const root = join(tmp.dir, name);
    fs.mkdirSync(join(root, 'src/sub'), { recursive: true });
    fs.writeFileSync(join(root, 'src/sub/user-file'), 'u');
    fs.chownSync(join(root, 'src/sub/user-file'), 1000, 1000);
    fs.mkdirSync(join(root, 'target'));
    return { root, target: join(root, 'target') };
  }

  it('idmappedBind re-checks its arguments', () => {
    const { root, target } = tree('bind-args');
    const file = fs.openSync('/etc/passwd', 'r');
    try {
      refuses(() => n.idmappedBind(join(root, 'src'), target, ns, 0x80000000, false), 'ERR_OUT_OF_RANGE', 'an unknown attr bit');
      refuses(() => n.idmappedBind(join(root, 'src'), target, ns, 0x00100000 /* MOUNT_ATTR_IDMAP */, false), 'ERR_OUT_OF_RANGE', 'IDMAP is not the caller\'s to set');
      refuses(() => n.idmappedBind(join(root, 'src'), target, ns, 0, 1 as unknown as boolean), 'ERR_INVALID_ARG_TYPE', 'recursive not a boolean');
      refuses(() => n.idmappedBind(join(root, 'src'), target, file, 0, false), 'EINVAL', 'not a namespace fd');
      refuses(() => n.idmappedBind(join(root, 'src'), `${target}\0x`, ns, 0, false), 'ERR_INVALID_ARG_VALUE', 'NUL in target');
      refuses(() => n.idmappedBind(join(root, 'src/sub/user-file'), target, ns, 0, false), 'ENOTDIR', 'a file');
      fs.symlinkSync(join(root, 'src'), join(root, 'link'));
      refuses(() => n.idmappedBind(join(root, 'link'), target, ns, 0, false), 'ENOTDIR', 'a symlink is not followed');
    } finally {
      fs.closeSync(file);
    }
    assert.equal(isMountPoint(target), false);
  });

  it('an idmapped bind shows owners through the maps; its restrictions hold; the disk keeps its owners', () => {
    const { root, target } = tree('bind');
    mount({ type: 'bind', source: join(root, 'src') }, target, { readOnly: true, idmap: { uidMap: [{ containerId: 0, hostId: 100000, size: 65536 }], gidMap: [{ containerId: 0, hostId: 100000, size: 65536 }] } });
    try {
      assert.equal(fs.statSync(join(target, 'sub/user-file')).uid, 101000);
      assert.equal(fs.statSync(target).gid, 100000);
      assert.throws(() => fs.writeFileSync(join(target, 'x'), 'x'), { code: 'EROFS' });
    } finally {
      unmount(target);
    }
    assert.equal(fs.statSync(join(root, 'src/sub/user-file')).uid, 1000, 'not chowned');
  });

  it('fsMount with idmap bases takes layer dirs only as {dir, at} beneath a base: relative, no .., no symlink, not into another mount', () => {
    const { root, target } = tree('ovl-args');
    for (const d of ['home/l1', 'home/l2', 'home/c/diff', 'home/c/work']) fs.mkdirSync(join(root, d), { recursive: true });
    fs.symlinkSync('l1', join(root, 'home/link'));
    fs.mkdirSync(join(root, 'home/mnt'));
    execFileSync('mount', ['-t', 'tmpfs', 'x', join(root, 'home/mnt')]);
    const bases = [{ usernsFd: ns, base: join(root, 'home') }];
    const lower2: [string, { dir: string; at: number }] = ['lowerdir+', { dir: 'l2', at: 0 }];
    try {
      const cases: Array<[() => unknown, ArgCode, string]> = [
        [() => fsn.fsMount('overlay', [['lowerdir+', join(root, 'home/l1')], lower2], target, 0, bases), 'ERR_INVALID_ARG_VALUE', 'a string layer path bypassing the idmap'],
        [() => fsn.fsMount('overlay', [['upperdir', join(root, 'home/c/diff')], lower2], target, 0, bases), 'ERR_INVALID_ARG_VALUE', 'a string upperdir'],
        [() => fsn.fsMount('overlay', [['lowerdir+', { dir: 'l1' }], lower2], target, 0, bases), 'ERR_INVALID_ARG_TYPE', 'no at'],
        [() => fsn.fsMount('overlay', [['lowerdir+', { dir: 'l1', at: 1 }], lower2], target, 0, bases), 'ERR_OUT_OF_RANGE', 'at past the bases'],
        [() => fsn.fsMount('overlay', [['lowerdir+', { dir: 'l1', at: 0 }], lower2], target, 0), 'ERR_INVALID_ARG_TYPE', 'at without idmap'],
        [() => fsn.fsMount('overlay', [['lowerdir+', { dir: '../ovl-args/home/l1', at: 0 }], lower2], target, 0, bases), 'ERR_INVALID_ARG_VALUE', '..'],
        [() => fsn.fsMount('overlay', [['lowerdir+', { dir: join(root, 'home/l1'), at: 0 }], lower2], target, 0, bases), 'ERR_INVALID_ARG_VALUE', 'absolute'],
        [() => fsn.fsMount('overlay', [['lowerdir+', { dir: 'l1//', at: 0 }], lower2], target, 0, bases), 'ERR_INVALID_ARG_VALUE', 'an empty component'],
        [() => fsn.fsMount('overlay', [['lowerdir+', { dir: 'link', at: 0 }], lower2], target, 0, bases), 'ELOOP', 'a symlink'],
        [() => fsn.fsMount('overlay', [lower2, lower2], target, 0, [{ usernsFd: ns, base: 'home' }]), 'ERR_INVALID_ARG_VALUE', 'a relative base'],
        [() => fsn.fsMount('overlay', [lower2, lower2], target, 0, []), 'ERR_OUT_OF_RANGE', 'no bases'],
        [() => fsn.fsMount('overlay', [lower2, lower2], target, 0, Array(5).fill(bases[0]!)), 'ERR_OUT_OF_RANGE', 'five bases'],
        [() => fsn.fsMount('overlay', [lower2, lower2], target, 0, [{ usernsFd: 0, base: join(root, 'home') }]), 'EINVAL', 'fd 0 is no namespace'],
        [() => fsn.fsMount('overlay', [lower2, lower2], target, 0, {} as unknown as []), 'ERR_INVALID_ARG_TYPE', 'not an array'],
      ];
      for (const [fn, code, what] of cases) refuses(fn, code, what);
      assert.equal(isMountPoint(target), false);
      // A mount below the base is not in its (non-recursive) idmapped clone: the layer is the directory under it.
      fs.writeFileSync(join(root, 'home/mnt/on-the-submount'), 'x');
      fsn.fsMount('overlay', [['lowerdir+', { dir: 'mnt', at: 0 }], lower2], target, 0, bases);
      try {
        assert.deepEqual(fs.readdirSync(target), []);
      } finally {
        unmount(target);
      }
    } finally {
      execFileSync('umount', [join(root, 'home/mnt')]);
    }
  });

  it("an idmapped overlay: layers shown through the maps, a container root's writes stored as 0, overlay's own files as the spare id", () => {
    const { root, target } = tree('ovl');
    for (const d of ['layers/a/diff', 'layers/b/diff', 'layers/c/diff', 'layers/c/work']) fs.mkdirSync(join(root, d), { recursive: true });
    fs.writeFileSync(join(root, 'layers/a/diff/root-file'), 'r');
    fs.mkdirSync(join(root, 'layers/b/diff/home'));
    fs.chownSync(join(root, 'layers/b/diff/home'), 1000, 1000);
    const spec = {
      type: 'overlay' as const,
      lowers: [join(root, 'layers/b/diff'), join(root, 'layers/a/diff')],
      upper: join(root, 'layers/c/diff'),
      work: join(root, 'layers/c/work'),
      options: ['index=off', 'redirect_dir=off', 'metacopy=off'],
    };
    // The namespace by fd (the caller's: not closed) and by path.
    const fdsBefore = openFds();
    mount(spec, target, { idmap: { userns: ns } });
    try {
      assert.equal(openFds(), fdsBefore, 'no fd left open, the caller\'s kept');
      n.usernsCheck(ns);
      assert.equal(fs.statSync(join(target, 'root-file')).uid, 100000);
      assert.equal(fs.statSync(join(target, 'home')).uid, 101000);
      // A process of the container's namespace (root there = host 100000) writes: stored as 0 and 1000 on disk.
      execFileSync('nsenter', [`--user=/proc/${process.pid}/fd/${ns}`, '--', 'sh', '-c', `echo c > ${target}/by-root && mkdir ${target}/home/sub && chown 1000:1000 ${target}/home/sub && rm ${target}/root-file`]);
      const st = (rel: string) => fs.lstatSync(join(spec.upper, rel));
      assert.deepEqual([st('by-root').uid, st('by-root').gid], [0, 0]);
      assert.deepEqual([st('home/sub').uid, st('home').uid], [1000, 1000]);
      // The whiteout overlay made for the rm is its own file: the spare id, which the container does not map.
      assert.ok(st('root-file').isCharacterDevice());
      assert.equal(st('root-file').uid, 4294967294);
    } finally {
      unmount(target);
    }
    mount(spec, target, { idmap: { userns: `/proc/self/fd/${ns}` } });
    try {
      assert.equal(openFds(), fdsBefore, 'the namespace opened by path is closed again');
      assert.equal(fs.statSync(join(target, 'by-root')).uid, 100000);
    } finally {
      unmount(target);
    }
  });

  it('openIdmap closes what it opened and never the caller\'s fd', () => {
    const before = openFds();
    const made = openIdmap({ uidMap: [{ containerId: 0, hostId: 5000, size: 10 }], gidMap: [{ containerId: 0, hostId: 5000, size: 10 }] });
    const up = made.upperFd();
    assert.notEqual(up, made.fd, 'the upper namespace has one more line');
    assert.deepEqual(n.usernsMaps(up).uidMap, [0, 5000, 10, 4294967294, 0, 1]);
    made.close();
    assert.equal(openFds(), before);
    const given = openIdmap({ userns: ns });
    assert.equal(given.fd, ns);
    given.upperFd();
    given.close();
    n.usernsCheck(ns);
    assert.equal(openFds(), before);
  });
});

describe('idmap: options', () => {
  it('spareId takes the highest id no range covers', () => {
    assert.equal(spareId([{ containerId: 0, hostId: 100000, size: 65536 }]), 4294967294);
    assert.equal(spareId([{ containerId: 4294967290, hostId: 1, size: 5 }]), 4294967289);
    assert.equal(spareId([{ containerId: 0, hostId: 1, size: 4294967295 }]), undefined);
  });

  it('parses --uidmap / --gidmap / --userns; a gid map defaults to the uid map', () => {
    assert.deepEqual(parseIdMapping('0:100000:65536'), { containerId: 0, hostId: 100000, size: 65536 });
    for (const bad of ['0:100000', 'a:b:c', '0:1:2:3', '-1:0:1', '0:0:99999999999']) assert.throws(() => parseIdMapping(bad), { code: 'TSG_USAGE' }, bad);
    const m = idmapFromFlags({ uidmap: ['0:100000:65536'] });
    assert.deepEqual(m, { uidMap: [{ containerId: 0, hostId: 100000, size: 65536 }], gidMap: [{ containerId: 0, hostId: 100000, size: 65536 }] });
    assert.deepEqual(idmapFromFlags({ userns: '/proc/1/ns/user' }), { userns: '/proc/1/ns/user' });
    assert.equal(idmapFromFlags({}), undefined);
    assert.throws(() => idmapFromFlags({ userns: '/x', uidmap: ['0:1:1'] }), { code: 'TSG_USAGE' });
    assert.throws(() => idmapFromFlags({ gidmap: ['0:1:1'] }), { code: 'TSG_USAGE' });
  });

  it('checkMountOptions: labels with MCS commas pass, label and overlay options need overlay, aufs is never idmapped', () => {
    assert.equal(checkMountOptions({ label: 'system_u:object_r:container_file_t:s0:c1,c2' }, 'overlay').label, 'system_u:object_r:container_file_t:s0:c1,c2');
    assert.deepEqual(checkMountOptions({ overlayOptions: ['uuid=null', 'redirect_dir=nofollow'] }, 'overlay').overlayOptions, ['uuid=null', 'redirect_dir=nofollow']);
    assert.throws(() => checkMountOptions({ overlayOptions: ['volatile'] }, 'overlay'), /never be mounted again/);
    assert.throws(() => checkMountOptions({ label: 'a:b:c' }, 'bind'), { code: 'TSG_UNSUPPORTED' });
    assert.throws(() => checkMountOptions({ overlayOptions: ['xino=off'] }, 'bind'), { code: 'TSG_USAGE' });
    assert.throws(() => checkMountOptions({ idmap: { userns: 3 } }, 'aufs'), { code: 'TSG_UNSUPPORTED' });
    assert.throws(() => checkMountOptions({ readOnly: 'yes' as unknown as boolean }), { code: 'TSG_USAGE' });
    assert.throws(() => checkMountOptions({ overlayOptions: Array(33).fill('xino=off') }), { code: 'TSG_USAGE' });
  });
});
