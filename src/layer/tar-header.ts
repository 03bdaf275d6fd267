/**
 * A raw ustar header block, for the one thing tar-stream cannot write: a PAX
 * extended header with binary values. 512 bytes, checksum filled in.
 */
const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

export function ustarHeader(name: string, typeflag: string, size: number, mtime = 0): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(mtime, 12), 136, 'latin1');
  h.write(typeflag, 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/** A PAX extended header ('x') with `records` as its data, padded to blocks. */
export function paxHeaderBlocks(name: string, records: Buffer): Buffer {
  const pad = (BLOCK - (records.length % BLOCK)) % BLOCK;
  return Buffer.concat([ustarHeader(name, 'x', records.length), records, Buffer.alloc(pad)]);
}
