/**
 * Deleting a tree someone else may still be writing: a container layer while
 * a process of that container (in its own mount namespace, where the layer is
 * still mounted) keeps running. A path-based recursive delete lstat's a
 * directory and then lists and descends into it by name: swap the directory
 * for a symlink to `/` in between and it deletes the host. Here every entry
 * is opened relative to its parent's fd without following (util/safe-dir.ts)
 * and removed through that parent fd's /proc magic link, so the only name
 * ever resolved is a single component in a directory we hold open; unlink and
 * rmdir never follow a final symlink. It never crosses into another
 * filesystem: a mount inside the tree (a volume bound into a container) is
 * refused with TSG_IN_USE, never emptied.
 */
import * as fs from 'node:fs';
import { BusyError, TsgraphError } from '../errors.js';
import { readMountInfo } from '../mount/mountinfo.js';
import { bytesOf } from './byte-path.js';
import { SafeNode } from './safe-dir.js';

/** Bound on nesting (a layer path is at most 4096 bytes, so 2048 levels). */
const MAX_DEPTH = 4096;
/** Bound on retries when the tree changes under us (entries added, swapped). */
const MAX_PASSES = 4;

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function childPath(dir: SafeNode, name: string): Buffer {
  return Buffer.concat([Buffer.from(`/proc/self/fd/${dir.fd}/`), bytesOf(name)]);
}

/** Removes entry `name` of `dir`, whatever it is now. */
function removeEntry(dir: SafeNode, name: string, depth: number, dev: number): void {
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const child = dir.open(name);
    if (!child) return;
    const isDir = child.stats.isDirectory();
    try {
      if (isDir) emptyDir(child, depth + 1, dev);
    } finally {
      child.close();
    }
    try {
      if (isDir) fs.rmdirSync(childPath(dir, name));
      else fs.unlinkSync(childPath(dir, name));
      return;
    } catch (err) {
      const c = code(err);
      if (c === 'ENOENT') return;
      // Swapped (dir ↔ non-dir) or refilled since we looked: look again, boundedly.
      if (c !== 'ENOTDIR' && c !== 'EISDIR' && c !== 'ENOTEMPTY' && c !== 'EEXIST') throw err;
    }
  }
  throw new BusyError('TSG_IN_USE', `${dir.where}: ${JSON.stringify(name)} keeps changing while it is removed (is a container still running on it?)`);
}

function emptyDir(dir: SafeNode, depth: number, dev: number): void {
  if (depth > MAX_DEPTH) throw new TsgraphError('TSG_INVALID_LAYER', `${dir.where} is nested deeper than ${MAX_DEPTH} levels`);
  // Another filesystem below the tree (a mount made after the check in removeTree): not ours to empty.
  if (dir.stats.dev !== dev) throw new BusyError('TSG_IN_USE', `${dir.where} is another filesystem mounted inside; unmount it first`);
  for (const name of dir.names()) removeEntry(dir, name, depth, dev);
}

/**
 * `rm -rf path` that never follows a link below `path` (`path` itself is a
 * host path tsgraph chose: a layer dir, a staging dir). Missing is fine.
 */
export function removeTree(path: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (err) {
    if (code(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isDirectory()) {
    fs.rmSync(path, { force: true });
    return;
  }
  // A mount inside (a volume bound into the container's tree) would be emptied too: host data.
  const real = fs.realpathSync(path);
  const inside = readMountInfo(real).find((m) => m.mountPoint === real || m.mountPoint.startsWith(`${real}/`));
  if (inside) throw new BusyError('TSG_IN_USE', `${inside.mountPoint} is mounted inside ${path}; unmount it first`, { data: { mountPoint: inside.mountPoint } });
  const root = SafeNode.openRoot(path);
  try {
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      emptyDir(root, 0, root.stats.dev);
      try {
        fs.rmdirSync(path);
        return;
      } catch (err) {
        if (code(err) === 'ENOENT') return;
        if (code(err) !== 'ENOTEMPTY') throw err;
      }
    }
  } finally {
    root.close();
  }
  throw new BusyError('TSG_IN_USE', `${path} keeps filling up while it is removed (is a container still running on it?)`);
}
