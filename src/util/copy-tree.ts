/**
 * Copies a tree exactly: types, modes (setuid too), owners, times, xattrs,
 * symlinks verbatim, devices and fifos, and hardlinks kept as hardlinks.
 * Regular files use copy_file_range/FICLONE (`COPYFILE_FICLONE`): a reflink on
 * filesystems that have it (btrfs, xfs), a plain copy elsewhere.
 *
 * The source may be a running container's layer (commit copies the overlay
 * upper): it is read through util/safe-dir.ts, so every entry is opened
 * without following, described by fstat of that fd, and copied from that fd.
 * The destination is tsgraph's own new directory. Names are bytes.
 *
 * Metadata order matters: the kernel clears security.capability (and
 * setuid/setgid) on chown, so owner first, then mode, then xattrs with
 * security.capability last.
 */
import * as fs from 'node:fs';
import { mknod, setXattr } from '../layer/xattr.js';
import { bytesOf } from './byte-path.js';
import { splitDev } from './fs-helpers.js';
import { SafeNode } from './safe-dir.js';

export interface CopyOptions {
  /** Decides which xattrs to copy (default: all). */
  xattrFilter?: (name: string) => boolean;
}

const CAPABILITY = 'security.capability';
const SLASH = Buffer.from('/');

export function copyTree(src: string, dst: string, options: CopyOptions = {}): void {
  const inodes = new Map<string, Buffer>(); // dev:ino → first destination path
  const dirTimes: Array<[Buffer, Date, Date]> = [];
  const filter = options.xattrFilter ?? (() => true);

  const copyMeta = (node: SafeNode, to: Buffer) => {
    const st = node.stats;
    fs.lchownSync(to, st.uid, st.gid);
    if (!st.isSymbolicLink()) fs.chmodSync(to, st.mode & 0o7777);
    const xattrs = [...node.xattrs()].filter(([name]) => filter(name));
    xattrs.sort(([a], [b]) => Number(a === CAPABILITY) - Number(b === CAPABILITY));
    for (const [name, value] of xattrs) setXattr(to, name, value);
  };

  const copyNode = (node: SafeNode, to: Buffer) => {
    const st = node.stats;
    if (st.isDirectory()) {
      if (!fs.existsSync(to)) fs.mkdirSync(to, { mode: 0o700 });
      for (const name of node.names()) {
        const child = node.open(name);
        if (!child) continue; // gone since the listing
        try {
          copyNode(child, Buffer.concat([to, SLASH, bytesOf(name)]));
        } finally {
          child.close();
        }
      }
      copyMeta(node, to);
      dirTimes.push([to, st.atime, st.mtime]);
      return;
    }
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = inodes.get(key);
      if (first) {
        fs.linkSync(first, to);
        return;
      }
      inodes.set(key, to);
    }
    if (st.isSymbolicLink()) {
      fs.symlinkSync(bytesOf(node.readlink()), to);
      copyMeta(node, to);
      fs.lutimesSync(to, st.atime, st.mtime);
      return;
    }
    if (st.isFile()) {
      // Through the opened fd's magic link: the inode fstat described, not a name.
      fs.copyFileSync(`/proc/self/fd/${node.contentFd()}`, to, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const { major, minor } = splitDev(st.rdev);
      mknod(to, st.isCharacterDevice() ? 'char' : 'block', 0o600, major, minor);
    } else if (st.isFIFO()) mknod(to, 'fifo', 0o600);
    else return; // sockets are not layer content
    copyMeta(node, to);
    fs.lutimesSync(to, st.atime, st.mtime);
  };

  const root = SafeNode.openRoot(src);
  try {
    copyNode(root, Buffer.from(dst, 'utf8'));
  } finally {
    root.close();
  }
  for (let i = dirTimes.length - 1; i >= 0; i--) {
    const [p, a, m] = dirTimes[i]!;
    fs.lutimesSync(p, a, m);
  }
}
