/**
 * File names are bytes, not text. Linux allows any byte but '/' and NUL in a
 * name, and tar headers carry bytes; decoding them as UTF-8 turns `caf\xe9`
 * and `caf\xe8` into the same `caf\uFFFD` and loses a file.
 *
 * tsgraph's convention for paths *inside a layer or container* (entry names,
 * `rel` paths, Change.path): a "byte string", a JS string with one char per
 * byte (latin1, code units 0–255). It round-trips every byte exactly, works as
 * a Map/Set key, and `/` is still `/`. It turns into a Buffer only at the
 * syscall (`fsPath`) and into text only for people (`displayPath`).
 *
 * Host paths chosen by the user (the store root, --root, output files) stay
 * ordinary UTF-8 strings.
 */
import * as fs from 'node:fs';

/** Bytes → byte string. */
export function byteString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** Byte string → bytes. */
export function bytesOf(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** A UTF-8 JS string (e.g. from a tool or a test) → byte string. */
export function byteStringOfText(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** `root` (UTF-8 host path) joined with `rel` (byte string) as a Buffer for fs calls. */
export function fsPath(root: string, rel: string): Buffer {
  if (!rel) return Buffer.from(root, 'utf8');
  return Buffer.concat([Buffer.from(root, 'utf8'), Buffer.from('/'), Buffer.from(rel, 'latin1')]);
}

/** readdir whose names come back as byte strings. */
export function readdirBytes(dir: string | Buffer): string[] {
  return (fs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('latin1'));
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * For people: the UTF-8 text when the bytes are valid UTF-8, else each
 * non-UTF-8 byte as `\xNN` (and a literal backslash stays `\\` then, so the
 * form is unambiguous). Control characters are escaped either way so a name
 * cannot drive a terminal.
 */
export function displayPath(rel: string): string {
  const bytes = bytesOf(rel);
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch {
    let out = '';
    for (const b of bytes) {
      if (b === 0x5c) out += '\\\\';
      else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
      else out += `\\x${b.toString(16).padStart(2, '0')}`;
    }
    return out;
  }
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
