/**
 * Copies a tree exactly: types, modes (setuid too), owners, times, xattrs,
 * symlinks verbatim, devices and fifos, and hardlinks kept as hardlinks.
 * Regular files use copy_file_range/FICLONE (`COPYFILE_FICLONE`): a reflink on
 * filesystems that have it (btrfs, xfs), a plain copy elsewhere.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { mknod, readXattrs, setXattr } from '../layer/xattr.js';
import { splitDev } from './fs-helpers.js';

export interface CopyOptions {
  /** Decides which xattrs to copy (default: all). */
  xattrFilter?: (name: string) => boolean;
}

export function copyTree(src: string, dst: string, options: CopyOptions = {}): void {
  const inodes = new Map<string, string>(); // dev:ino → first destination path
  const dirTimes: Array<[string, Date, Date]> = [];
  const filter = options.xattrFilter ?? (() => true);

  const copyMeta = (from: string, to: string, st: fs.Stats, isLink: boolean) => {
    for (const [name, value] of readXattrs(from)) if (filter(name)) setXattr(to, name, value);
    fs.lchownSync(to, st.uid, st.gid);
    if (!isLink) fs.chmodSync(to, st.mode & 0o7777);
  };

  const walk = (from: string, to: string, st: fs.Stats) => {
    if (st.isDirectory()) {
      if (!fs.existsSync(to)) fs.mkdirSync(to, { mode: 0o700 });
      for (const name of fs.readdirSync(from)) {
        const f = join(from, name);
        walk(f, join(to, name), fs.lstatSync(f));
      }
      copyMeta(from, to, st, false);
      dirTimes.push([to, st.atime, st.mtime]);
      return;
    }
    if (st.nlink > 1 && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      const first = inodes.get(key);
      if (first) {
        fs.linkSync(first, to);
        return;
      }
      inodes.set(key, to);
    }
    if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from), to);
      copyMeta(from, to, st, true);
      fs.lutimesSync(to, st.atime, st.mtime);
      return;
    }
    if (st.isFile()) fs.copyFileSync(from, to, fs.constants.COPYFILE_FICLONE);
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      {
      const { major, minor } = splitDev(st.rdev);
      mknod(to, st.isCharacterDevice() ? 'char' : 'block', 0o600, major, minor);
    }
    } else if (st.isFIFO()) mknod(to, 'fifo', 0o600);
    else if (st.isSocket()) return; // sockets are not layer content
    copyMeta(from, to, st, false);
    fs.lutimesSync(to, st.atime, st.mtime);
  };

  walk(src, dst, fs.lstatSync(src));
  for (let i = dirTimes.length - 1; i >= 0; i--) {
    const [p, a, m] = dirTimes[i]!;
    fs.lutimesSync(p, a, m);
  }
}
