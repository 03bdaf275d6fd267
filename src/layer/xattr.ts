/**
 * Extended attributes through the native l*xattr calls: never following
 * symlinks, so an image's symlink cannot redirect a metadata write.
 */
import { TsgraphError } from '../errors.js';
import { nativeFs } from '../native.js';

/**
 * The binding refuses a name with a NUL byte (C would cut it short and act
 * on another attribute). Only image content (PAX SCHILY.xattr.* records)
 * can carry one, so say which attribute of the layer was refused.
 */
function refusedArgument<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_INVALID_ARG_VALUE') {
      throw new TsgraphError('TSG_INVALID_LAYER', `extended attribute ${JSON.stringify(name)} refused: ${(err as Error).message}`, {
        cause: err,
        data: { xattr: name },
      });
    }
    throw err;
  }
}

export function listXattrs(path: string | Buffer): string[] {
  return nativeFs().llistxattr(path);
}

export function getXattr(path: string | Buffer, name: string): Buffer | null {
  return refusedArgument(name, () => nativeFs().lgetxattr(path, name));
}

export function setXattr(path: string | Buffer, name: string, value: Buffer | string): void {
  refusedArgument(name, () => nativeFs().lsetxattr(path, name, Buffer.isBuffer(value) ? value : Buffer.from(value), 0));
}

export function removeXattr(path: string | Buffer, name: string): void {
  refusedArgument(name, () => nativeFs().lremovexattr(path, name));
}

/** All xattrs of a path as name → value. */
export function readXattrs(path: string | Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of listXattrs(path)) {
    const v = getXattr(path, name);
    if (v) out.set(name, v);
  }
  return out;
}

/** mknod for devices, fifos and overlay whiteouts (char 0/0). */
export function mknod(path: string | Buffer, kind: 'char' | 'block' | 'fifo', perm: number, major = 0, minor = 0): void {
  const n = nativeFs();
  const type = kind === 'char' ? n.fsConstants.S_IFCHR : kind === 'block' ? n.fsConstants.S_IFBLK : n.fsConstants.S_IFIFO;
  n.mknod(path, type | (perm & 0o7777), major, minor);
}
