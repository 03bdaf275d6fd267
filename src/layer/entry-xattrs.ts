/**
 * An entry's xattrs (from PAX `SCHILY.xattr.*`) set on what the applier made:
 * the applier's second job, kept apart from creating entries. Entries with
 * xattrs never take the batched path (apply-planner.ts), so this is the one
 * place an image's xattrs reach the disk.
 */
import { TsgraphError } from '../errors.js';
import { inInitialUserNs } from '../rootless/userns.js';
import { displayPath } from '../util/byte-path.js';
import type { Entry } from './entry.js';
import { OVERRIDE_STAT } from './owner-override.js';
import { unsafe } from './paths.js';
import { setXattr } from './xattr.js';

const MAX_XATTR_VALUE = 64 * 1024;
const CAPABILITY = 'security.capability';

/**
 * Sets `e.xattrs` on `path`. `storedName` maps an image xattr to the name it
 * is stored under (the whiteout format escapes overlay's own), or null to drop it.
 */
export function setEntryXattrs(path: Buffer, e: Entry, storedName: (name: string) => string | null): void {
  if (e.xattrs.length === 0) return; // most entries: no allocation on the per-file path
  // security.capability last, after everything that could clear it.
  const ordered = [...e.xattrs.filter(([n]) => n !== CAPABILITY), ...e.xattrs.filter(([n]) => n === CAPABILITY)];
  for (const [name, value] of ordered) {
    if (value.length > MAX_XATTR_VALUE) throw unsafe(e.name, `xattr ${name} is larger than ${MAX_XATTR_VALUE} bytes`);
    // tsgraph's own bookkeeping of owners (owner-override.ts): never the image's to set.
    const stored = name === OVERRIDE_STAT ? null : storedName(name);
    if (!stored) continue;
    try {
      setXattr(path, stored, value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A filesystem without that namespace: skipped, as containerd does. In a user namespace
      // (rootless) trusted.* and security.* are the host's: refused with EPERM, dropped as
      // containers/storage does, not reported as a malformed layer.
      if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') continue;
      if (code === 'EPERM' && !inInitialUserNs() && (name.startsWith('trusted.') || name.startsWith('security.'))) continue;
      throw new TsgraphError('TSG_INVALID_LAYER', `layer entry ${JSON.stringify(displayPath(e.name))}: the filesystem refuses xattr ${JSON.stringify(name)} (${code})`, {
        cause: err,
      });
    }
  }
}
