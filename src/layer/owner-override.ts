/**
 * Owners that cannot be stored, kept in an xattr: the single-id rootless
 * mode (docs/rootless.md). A user with no /etc/subuid range can still map
 * their own id (as uid 0) into a user namespace, but no other: chown to the
 * image's uid 1000 fails with EINVAL (the id is not mapped). Like
 * containers/storage's `ignore_chown_errors` / `force_mask`, such an entry
 * stays owned by the user and its real owner and mode are recorded in
 * `user.containers.override_stat` = `uid:gid:0mode:type`
 * (type: file, dir, symlink, pipe, socket, char-M-m, block-M-m), the format
 * c/storage and fuse-overlayfs read. The kernel's overlay does not read it:
 * a container sees such files as root's. tsgraph reads it back when it
 * writes a layer (diff --output, commit) in such a namespace, so committed
 * layers keep the image's owners; copy-up keeps user.* xattrs, so a file the
 * container changed keeps its recorded owner too. Anywhere else the xattr is
 * dropped unread: a container of a rootful store could set it to forge the
 * owners of a layer it commits.
 *
 * user.* xattrs exist on regular files and directories only: a symlink or
 * fifo whose owner cannot be set keeps the user's (nothing records it).
 * An image's own `user.containers.override_stat` is never stored (apply.ts):
 * it is tsgraph's bookkeeping, not the image's.
 */
import * as fs from 'node:fs';
import { removeXattr, setXattr } from './xattr.js';
import { UnsupportedError } from '../errors.js';
import { displayPath } from '../util/byte-path.js';
import { inInitialUserNs } from '../rootless/userns.js';

export const OVERRIDE_STAT = 'user.containers.override_stat';

export interface OwnerOverride {
  uid: number;
  gid: number;
  /** Permission bits (0o7777). */
  mode: number;
  type: string;
}

let singleId: boolean | undefined;

/**
 * True in a user namespace that maps one id only (the single-id rootless
 * mode): asked once per process (a process never changes user namespace).
 */
export function singleIdNamespace(): boolean {
  if (singleId === undefined) {
    try {
      const lines = fs.readFileSync('/proc/self/uid_map', 'latin1').trim().split('\n');
      const [, , count] = (lines[0] ?? '').trim().split(/\s+/);
      singleId = lines.length === 1 && count === '1';
    } catch {
      singleId = false;
    }
  }
  return singleId;
}

export function encodeOverride(o: OwnerOverride): string {
  return `${o.uid}:${o.gid}:${(o.mode & 0o7777).toString(8).padStart(4, '0')}:${o.type}`;
}

const MAX_ID = 0xffff_fffe;

/** The override an xattr value holds; null when it is not one tsgraph would write (refused, not guessed). */
export function parseOverride(value: Buffer | null | undefined): OwnerOverride | null {
  if (!value || value.length > 64) return null;
  const m = /^(\d{1,10}):(\d{1,10}):([0-7]{1,6})(?::([a-z]+(?:-\d{1,10}-\d{1,10})?))?$/.exec(value.toString('latin1'));
  if (!m) return null;
  const uid = Number(m[1]);
  const gid = Number(m[2]);
  const mode = parseInt(m[3]!, 8);
  if (uid > MAX_ID || gid > MAX_ID || mode > 0o7777) return null;
  return { uid, gid, mode, type: m[4] ?? '' };
}

/**
 * A chown that failed with EINVAL in a user namespace: the layer wants an
 * owner the namespace does not map (an image uid beyond the user's
 * /etc/subuid range). Said as such, not as a malformed layer.
 */
export function ownerNotMapped(err: unknown, name: string): UnsupportedError | undefined {
  const e = err as NodeJS.ErrnoException;
  if (e?.code !== 'EINVAL' || !/chown/.test(`${e.syscall ?? ''} ${e.message ?? ''}`) || inInitialUserNs()) return undefined;
  return new UnsupportedError(
    'TSG_ROOTLESS',
    `layer entry ${JSON.stringify(displayPath(name))} has an owner this user namespace does not map: the /etc/subuid or /etc/subgid range is too small for this image (or use TSGRAPH_ROOTLESS_IDS=single)`,
    { cause: err, data: { entry: displayPath(name) } },
  );
}

/** What lowerDirStats (overlay/lower-dir.ts) adds in a single-id namespace: the lower dir's record. */
export interface WithOwnerOverride {
  ownerOverride?: Buffer | null;
}

/**
 * An implicit parent dir takes the lower dir's owner: in a single-id
 * namespace that includes its record (`dir` was just made by the applier).
 */
export function inheritOverride(dir: Buffer, lower: WithOwnerOverride): void {
  if (lower.ownerOverride) setXattr(dir, OVERRIDE_STAT, lower.ownerOverride);
}

/**
 * Runs `chown`; when it fails because the id is not mapped here (EINVAL)
 * and `record` is on, keeps the user as the owner and records the wanted
 * one on `path` instead (regular files and directories; see above).
 */
export function chownOrRecord(path: Buffer, want: OwnerOverride, record: boolean, chown: () => void): void {
  try {
    chown();
    // A directory merged over a lower one (vfs copies the parent's tree) may carry the lower's record.
    if (record && want.type === 'dir') {
      try {
        removeXattr(path, OVERRIDE_STAT);
      } catch {
        /* none: the common case */
      }
    }
  } catch (err) {
    if (!record || (err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    if (want.type === 'file' || want.type === 'dir') setXattr(path, OVERRIDE_STAT, encodeOverride(want));
  }
}
