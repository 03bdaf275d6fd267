/** Small fs helpers shared by the layer, content and driver code. */
import * as fs from 'node:fs';

/** lstat, or null when nothing is there. */
export function lstatOrNull(path: string | Buffer): fs.Stats | null {
  // No exception for the common miss: this runs per entry while applying a layer.
  return fs.lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

/** Writes all of `buf` to `fd` (at `position` when given), looping over short writes. */
export function writeAll(fd: number, buf: Uint8Array, position?: number): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, position === undefined ? null : position + off);
}

/** Linux dev_t → major, minor (glibc's encoding; what stat reports as rdev). */
export function splitDev(rdev: number): { major: number; minor: number } {
  return { major: Math.floor(rdev / 256) & 0xfff, minor: (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00) };
}
