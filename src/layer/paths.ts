/**
 * Entry names from image tars are hostile until proven otherwise. These
 * helpers turn a tar name into a clean relative path or refuse it with
 * TSG_UNSAFE_PATH: no absolute names, no `..`, no NUL, bounded length.
 *
 * Names are byte strings (util/byte-path.ts: one char per byte), so
 * `.length` is the length in bytes, as the kernel counts it.
 */
import { UnsafeError } from '../errors.js';
import { displayPath } from '../util/byte-path.js';

/** The longest name: PATH_MAX (4096) without its NUL, as the native side checks too. */
export const MAX_PATH_BYTES = 4095;
/** Linux PATH_MAX, its NUL included: the longest full path the kernel takes by name. */
export const PATH_MAX = MAX_PATH_BYTES + 1;
const MAX_COMPONENT_BYTES = 255;
// eslint-disable-next-line no-control-regex
const NOT_BYTES = /[^\x00-\xff]/;

/** `./a//b/` → `a/b`; `.` or `./` → `` (the layer root). Throws on anything that could escape. */
export function cleanEntryPath(name: string, what = 'entry'): string {
  if (NOT_BYTES.test(name)) throw unsafe(name, `${what} name is not a byte string (internal error)`);
  if (name.includes('\0')) throw unsafe(name, `${what} name contains a NUL byte`);
  if (name.length > MAX_PATH_BYTES) throw unsafe(name, `${what} name is longer than ${MAX_PATH_BYTES} bytes`);
  if (name.startsWith('/')) throw unsafe(name, `${what} name is absolute`);
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw unsafe(name, `${what} name contains ".."`);
    if (part.length > MAX_COMPONENT_BYTES) throw unsafe(name, `${what} name has a component over ${MAX_COMPONENT_BYTES} bytes`);
    parts.push(part);
  }
  return parts.join('/');
}

/** `name` is a byte string; the message shows it readably (util/byte-path.ts displayPath). */
export function unsafe(name: string, why: string): UnsafeError {
  const shown = NOT_BYTES.test(name) ? name : displayPath(name.slice(0, 200));
  return new UnsafeError('TSG_UNSAFE_PATH', `unsafe layer entry ${JSON.stringify(shown.slice(0, 400))}: ${why}`, { data: { name: shown.slice(0, 4096) } });
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

export function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

export function joinRel(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}
