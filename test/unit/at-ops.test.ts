/**
 * native/at-ops.cc: the fd-relative calls util/safe-dir.ts is built on.
 * Names are one component (the native side re-checks, whatever TypeScript
 * sends), nothing is followed, and metadata comes from the fd: a symlink's
 * own xattrs and target, never its target's.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mknod, setXattr } from '../../src/layer/xattr.js';
import { nativeAt } from '../../src/native.js';
import { SafeNode } from '../../src/util/safe-dir.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

describe('native fd-relative ops', () => {
  let dir: string;
  let dirfd: number;
  const at = () => nativeAt();
  before(() => {
    dir = makeTempDir();
    fs.writeFileSync(join(dir, 'target'), 'host file');
    setXattr(join(dir, 'target'), 'trusted.whose', 'target');
    fs.symlinkSync(join(dir, 'target'), join(dir, 'link'));
    setXattr(join(dir, 'link'), 'trusted.whose', 'link');
    mknod(join(dir, 'fifo'), 'fifo', 0o644);
    dirfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  });
  after(() => {
    fs.closeSync(dirfd);
    removeDir(dir);
  });

  it('refuses names that are not one component, NUL bytes, bad fds and O_CREAT', () => {
    const { O_PATH } = at().atConstants;
    for (const name of ['', '.', '..', 'a/b', '../target', '/etc/passwd', Buffer.from('tar\0get')]) {
      assert.throws(() => at().openatNoFollow(dirfd, name, O_PATH), TypeError, `refused ${JSON.stringify(String(name))}`);
    }
    assert.throws(() => at().openatNoFollow(-1, 'target', O_PATH), RangeError);
    assert.throws(() => at().openatNoFollow(dirfd + 0.5, 'target', O_PATH), RangeError);
    assert.throws(() => at().openatNoFollow(dirfd, 'new', fs.constants.O_CREAT | fs.constants.O_WRONLY), RangeError);
    assert.ok(!fs.existsSync(join(dir, 'new')));
    // Read-only: nothing that writes, truncates or makes a file gets through (review finding).
    for (const flags of [fs.constants.O_WRONLY | fs.constants.O_TRUNC, fs.constants.O_RDWR, fs.constants.O_APPEND, 0o20200000 /* O_TMPFILE */]) {
      assert.throws(() => at().openatNoFollow(dirfd, 'target', flags), (e: Error) => e instanceof TypeError || e instanceof RangeError, `flags ${flags.toString(8)} refused`);
    }
    assert.equal(fs.readFileSync(join(dir, 'target'), 'utf8').length > 0, true, 'the file was not truncated');
  });

  it('never follows: a symlink fails to open for reading, and as O_PATH shows its own target and xattrs', () => {
    assert.throws(() => at().openatNoFollow(dirfd, 'link', fs.constants.O_RDONLY), (e: NodeJS.ErrnoException) => e.code === 'ELOOP');
    const fd = at().openatNoFollow(dirfd, Buffer.from('link'), at().atConstants.O_PATH);
    try {
      assert.ok(fs.fstatSync(fd).isSymbolicLink());
      assert.equal(at().freadlink(fd).toString(), join(dir, 'target'));
      assert.deepEqual(at().flistxattr(fd), ['trusted.whose']);
      assert.equal(at().fgetxattr(fd, 'trusted.whose')?.toString(), 'link');
      assert.equal(at().fgetxattr(fd, 'trusted.absent'), null);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('SafeNode gives a symlink as a link and never opens a FIFO or a link for content', () => {
    const root = SafeNode.openRoot(dir);
    try {
      const link = root.open('link')!;
      assert.equal(link.readlink(), join(dir, 'target'));
      assert.throws(() => link.contentFd(), (e: { code?: string }) => e.code === 'TSG_UNSAFE_PATH');
      link.close();
      assert.equal(root.open('missing'), null);
      const fifo = root.open('fifo')!;
      assert.ok(fifo.stats.isFIFO());
      assert.throws(() => fifo.readAll(1024), (e: { code?: string }) => e.code === 'TSG_UNSAFE_PATH');
      fifo.close();
      assert.deepEqual(root.names().sort(), ['fifo', 'link', 'target']);
    } finally {
      root.close();
    }
  });
});
