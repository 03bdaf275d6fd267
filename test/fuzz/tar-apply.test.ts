/**
 * Seeded fuzzing of the layer apply path (TarTap → tar-stream → applier),
 * for every whiteout format. Seeds are small layers holding every entry type
 * and the classic escape attempts (symlinks out of the root, absolute and
 * relative, hardlinks to outside, whiteouts through symlinks); each case
 * mutates header fields (with a fixed or broken checksum), names, PAX records
 * (lying lengths, sparse maps, paths, sizes) or raw bytes, and applies the result into a fresh root beside a sentinel
 * dir. A case passes when the apply succeeds or refuses with a TsgraphError,
 * and the sentinel and everything outside the root are untouched.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { applyTar } from '../../src/layer/apply.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { encodePaxRecord } from '../../src/layer/pax.js';
import { paxHeaderBlocks } from '../../src/layer/tar-header.js';
import { aufsFormat, naiveFormat, overlayFormat } from '../../src/layer/whiteout.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';
import { fuzz, fuzzConfig, INTERESTING_STRINGS, mutateBytes, type Rng } from './fuzz-kit.js';

const CASES = Number(process.env.FUZZ_TAR_CASES ?? 10_000);
const BLOCK = 512;

interface E {
  name: string;
  type?: string; // typeflag char
  body?: Buffer;
  link?: string;
  mode?: number;
  major?: number;
  minor?: number;
  pax?: Array<[string, Buffer]>;
}

function octal(v: number, width: number): string {
  return v.toString(8).padStart(width - 1, '0') + '\0';
}

function checksum(h: Buffer): void {
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

function header(e: E): Buffer {
  const h = Buffer.alloc(BLOCK);
  Buffer.from(e.name, 'latin1').copy(h, 0, 0, 100);
  h.write(octal(e.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(1000, 8), 108, 'latin1');
  h.write(octal(1000, 8), 116, 'latin1');
  h.write(octal(e.body?.length ?? 0, 12), 124, 'latin1');
  h.write(octal(1_700_000_000, 12), 136, 'latin1');
  h.write(e.type ?? '0', 156, 'latin1');
  if (e.link) Buffer.from(e.link, 'latin1').copy(h, 157, 0, 100);
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(e.major ?? 0, 8), 329, 'latin1');
  h.write(octal(e.minor ?? 0, 8), 337, 'latin1');
  checksum(h);
  return h;
}

function tarOf(entries: E[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.pax) parts.push(paxHeaderBlocks('PaxHeaders/x', Buffer.concat(e.pax.map(([k, v]) => encodePaxRecord(k, v)))));
    parts.push(header(e));
    if (e.body?.length) {
      parts.push(e.body, Buffer.alloc((BLOCK - (e.body.length % BLOCK)) % BLOCK));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

function seeds(sentinel: string): Buffer[] {
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  return [
    tarOf([
      { name: 'etc/', type: '5', mode: 0o755 },
      { name: 'etc/passwd', body: Buffer.from('root:x:0:0::/root:/bin/sh\n') },
      { name: 'bin/', type: '5' },
      { name: 'bin/sh', body: Buffer.from('#!'), mode: 0o4755 },
      { name: 'bin/ln', type: '1', link: 'bin/sh' },
      { name: 'bin/ping', body: Buffer.from('ping'), pax: [['SCHILY.xattr.security.capability', cap]] },
      { name: 'dev/', type: '5' },
      { name: 'dev/null', type: '3', major: 1, minor: 3 },
      { name: 'dev/fifo', type: '6' },
      { name: 'lib', type: '2', link: 'usr/lib' },
    ]),
    tarOf([
      { name: 'out', type: '2', link: '../sentinel' },
      { name: 'out/pwned', body: Buffer.from('x') },
      { name: 'abs', type: '2', link: sentinel },
      { name: 'abs/pwned', body: Buffer.from('x') },
      { name: 'abs/.wh.secret' },
      { name: 'hl', type: '1', link: '../sentinel/secret' },
      { name: 'hl2', type: '1', link: 'abs/secret' },
    ]),
    tarOf([
      { name: 'd/', type: '5' },
      { name: 'd/.wh..wh..opq' },
      { name: 'd/keep', body: Buffer.from('k') },
      { name: '.wh.gone' },
      { name: 'x', body: Buffer.from('1') },
      { name: 'x/', type: '5' },
      { name: 'dd', type: '2', link: '.' },
      { name: 'dd/dd/dd/f', body: Buffer.from('f') },
    ]),
    tarOf([
      { name: 'p', pax: [['path', Buffer.from('very/long/' + 'n'.repeat(200))], ['SCHILY.xattr.trusted.overlay.opaque', Buffer.from('y')]], body: Buffer.from('pax') },
      { name: 'l', type: '2', link: 'x', pax: [['linkpath', Buffer.from(sentinel + '/secret')], ['uid', Buffer.from('4294967296')]] },
      { name: 'caf\xe9', body: Buffer.from('latin1') },
      { name: 'sp', type: 'S', body: Buffer.alloc(600, 1) },
    ]),
  ];
}

/** Mutates one header field of a random header block, then fixes the checksum most of the time. */
function mutateHeader(rng: Rng, tar: Buffer): Buffer {
  const out = Buffer.from(tar);
  const blocks: number[] = [];
  for (let off = 0; off + BLOCK <= out.length; off += BLOCK) {
    if (out.toString('latin1', off + 257, off + 262) === 'ustar') blocks.push(off);
  }
  if (!blocks.length) return out;
  const off = rng.pick(blocks);
  const fields: Array<[number, number]> = [[0, 100], [100, 8], [108, 8], [116, 8], [124, 12], [136, 12], [156, 1], [157, 100], [329, 8], [337, 8], [345, 155]];
  const [start, len] = rng.pick(fields);
  const value = rng.chance(0.5)
    ? Buffer.from(rng.pick([...INTERESTING_STRINGS, '777777777777', '\x80\x00\x00\x01', '\xff\xff\xff\xff\xff\xff\xff\xff', '1', '2', '3', '4', '5', '6', '7', 'L', 'K', 'x', 'g', 'S', 'V', 'M']), 'latin1')
    : rng.bytes(1 + rng.int(len));
  out.fill(0, off + start, off + start + len);
  value.copy(out, off + start, 0, len);
  if (rng.chance(0.85)) checksum(out.subarray(off, off + BLOCK));
  return out;
}

/**
 * Mutates the records of a PAX extended header ('x' or 'g'): lengths that lie,
 * keys and values swapped for interesting ones, records cut or doubled; the
 * header's size field is rewritten to match (or not) and its checksum fixed.
 */
function mutatePax(rng: Rng, tar: Buffer): Buffer {
  const heads: number[] = [];
  for (let off = 0; off + BLOCK <= tar.length; off += BLOCK) {
    const t = tar[off + 156];
    if (tar.toString('latin1', off + 257, off + 262) === 'ustar' && (t === 0x78 || t === 0x67)) heads.push(off);
  }
  if (!heads.length) return mutateBytes(rng, tar, 2);
  const off = rng.pick(heads);
  const size = parseInt(tar.toString('latin1', off + 124, off + 135), 8) || 0;
  const dataEnd = off + BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  let records = tar.subarray(off + BLOCK, off + BLOCK + size);
  const keys = ['path', 'linkpath', 'size', 'uid', 'gid', 'mtime', 'GNU.sparse.map', 'GNU.sparse.size', 'GNU.sparse.major', 'GNU.sparse.minor', 'GNU.sparse.realsize', 'SCHILY.xattr.trusted.overlay.opaque', 'SCHILY.xattr.security.capability', 'hdrcharset'];
  switch (rng.int(4)) {
    case 0: // a whole new record with an interesting key and value
      records = Buffer.concat([records, encodePaxRecord(rng.pick(keys), Buffer.from(rng.pick(INTERESTING_STRINGS), 'latin1'))]);
      break;
    case 1: { // a length prefix that lies
      const lie = Buffer.from(`${rng.pick([0, 1, 5, 9, 99999, records.length + 1, -3])} ${rng.pick(keys)}=x\n`);
      records = Buffer.concat([rng.chance(0.5) ? lie : records, rng.chance(0.5) ? records : lie]);
      break;
    }
    case 2:
      records = Buffer.concat([records, records]);
      break;
    default:
      records = mutateBytes(rng, records, 3);
  }
  const pad = Buffer.alloc((BLOCK - (records.length % BLOCK)) % BLOCK);
  const head = Buffer.from(tar.subarray(off, off + BLOCK));
  const claimed = rng.chance(0.9) ? records.length : records.length + rng.int(1024) - 512;
  head.fill(0, 124, 136);
  head.write(octal(Math.max(0, claimed), 12), 124, 'latin1');
  checksum(head);
  return Buffer.concat([tar.subarray(0, off), head, records, pad, tar.subarray(dataEnd)]);
}

function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    out.push(`${p} ${st.mode} ${st.size} ${st.ino} ${st.mtimeMs}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(join(p, n));
    else if (st.isFile()) out.push(fs.readFileSync(p, 'latin1'));
  };
  walk(dir);
  return out.join('\n');
}

describe('fuzz: layer tars through the applier', () => {
  const tmp = suiteTmpfs('512m');

  it(`${CASES} mutated layers per run: applied or refused with a TsgraphError, never a write outside the root`, async () => {
    const base = join(tmp.dir, 'fuzz');
    const sentinel = join(base, 'sentinel');
    fs.mkdirSync(sentinel, { recursive: true });
    fs.writeFileSync(join(sentinel, 'secret'), 'secret');
    const before = snapshot(sentinel);
    const seedTars = seeds(sentinel);
    const formats = [overlayFormat, naiveFormat, aufsFormat];
    const root = join(base, 'root');
    let applied = 0;
    const report = await fuzz('applyTar', fuzzConfig(CASES, 0x7a4), async (rng, i) => {
      const seed = rng.pick(seedTars);
      const roll = rng.int(10);
      const input = roll < 5 ? mutateHeader(rng, seed) : roll < 7 ? mutatePax(rng, seed) : mutateBytes(rng, seed, 3);
      if (process.env.FUZZ_DUMP) fs.writeFileSync(process.env.FUZZ_DUMP, input);
      fs.mkdirSync(root, { mode: 0o755 });
      try {
        const { tar, tap, done } = openLayerTar(Readable.from([input]), 'none');
        done.catch(() => {});
        try {
          await applyTar(root, tar, { format: formats[i % formats.length]!, pax: tap.pax });
          tar.resume();
          await done;
          applied++;
        } finally {
          tar.destroy();
        }
      } finally {
        assert.deepEqual(fs.readdirSync(base).sort(), ['root', 'sentinel'], `case ${i}: nothing new beside the root`);
        assert.equal(snapshot(sentinel), before, `case ${i}: sentinel untouched`);
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
    assert.equal(report.cases, process.env.FUZZ_CASE ? 1 : CASES);
    if (!process.env.FUZZ_CASE) assert.ok(applied > CASES / 20 && report.rejected > CASES / 20, `both outcomes exercised: ${applied} applied, ${report.rejected} refused ${JSON.stringify([...report.codes])}`);
  });
});
