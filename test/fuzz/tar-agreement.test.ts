/**
 * Differential fuzzing against GNU tar: a layer tsgraph accepts must frame
 * the same entries GNU tar (and so Go's archive/tar and image scanners) sees.
 * Mutations aim at what frames an archive — size fields, numeric fields in
 * every spelling, PAX size/path records, end-of-archive blocks — on a seed of
 * plain ASCII names so the listings compare exactly. An accepted layer whose
 * entries differ from `tar -t` is content hidden from scanners (issue 8,
 * defect 3 and its siblings).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { applyTar } from '../../src/layer/apply.js';
import { openLayerTar } from '../../src/layer/unpack.js';
import { naiveFormat } from '../../src/layer/whiteout.js';
import { rawEntry, type RawEntry } from '../layer/raw-tar.js';
import { suiteTmpfs } from '../helpers/tmpfs.js';
import { fuzz, fuzzConfig, type Rng } from './fuzz-kit.js';

const CASES = Number(process.env.FUZZ_AGREE_CASES ?? 1500);
const BLOCK = 512;
const FIELDS: Array<[number, number]> = [[100, 8], [108, 8], [116, 8], [124, 12], [136, 12], [329, 8], [337, 8]];

function checksum(h: Buffer): void {
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

/** A numeric field's bytes in one of the spellings readers disagree on. */
function spelling(rng: Rng, value: number, width: number): Buffer {
  const digits = value.toString(8);
  const forms = [
    `${digits.padStart(width - 1, '0')}\0`,
    `\0 ${digits}`,
    ` ${digits}\0`,
    `\0${digits}`,
    `${digits} \0`,
    `${digits}\0 `,
    `  ${digits} `,
    `${digits.slice(0, 1)} ${digits.slice(1)}`,
    `0${digits}`.padStart(width, ' '),
    `${digits}8`,
  ];
  return Buffer.from(rng.pick(forms).slice(0, width), 'latin1');
}

function mutate(rng: Rng, seed: Buffer): Buffer {
  const out = Buffer.from(seed);
  const heads: number[] = [];
  for (let off = 0; off + BLOCK <= out.length; off += BLOCK) if (out.toString('latin1', off + 257, off + 262) === 'ustar') heads.push(off);
  for (let k = 1 + rng.int(2); k > 0; k--) {
    const off = rng.pick(heads);
    const [at, len] = rng.pick(FIELDS);
    const current = parseInt(out.toString('latin1', off + at, off + at + len).replace(/\0.*$/s, '').trim() || '0', 8) || 0;
    const value = rng.pick([current, current + 512, current + 1, 0, 512, 1024, 1000]);
    out.fill(0, off + at, off + at + len);
    spelling(rng, value, len).copy(out, off + at);
    checksum(out.subarray(off, off + BLOCK));
  }
  return out;
}

/** `ls -l`-style mode string, as `tar -tv` prints it. */
function modeString(st: fs.Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isFIFO() ? 'p' : '-';
  const m = st.mode;
  const bit = (mask: number, c: string) => (m & mask ? c : '-');
  const special = (x: boolean, s: boolean, lower: string, upper: string) => (s ? (x ? lower : upper) : x ? 'x' : '-');
  return (
    type +
    bit(0o400, 'r') + bit(0o200, 'w') + special(!!(m & 0o100), !!(m & 0o4000), 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + special(!!(m & 0o010), !!(m & 0o2000), 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + special(!!(m & 0o001), !!(m & 0o1000), 't', 'T')
  );
}

/**
 * What tsgraph wrote, one line per entry in `tar -tv --numeric-owner` terms:
 * `<mode> <uid>/<gid> <size> <name>` (size for regular files only, dirs
 * with a trailing slash).
 */
function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(rel ? join(root, rel) : root).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(join(root, r));
      // A symlink's mode means nothing on Linux (always 0777): only its type is compared.
      const mode = st.isSymbolicLink() ? 'l' : modeString(st);
      out.push(`${mode} ${st.uid}/${st.gid} ${st.isFile() ? st.size : '-'} ${st.isDirectory() ? `${r}/` : r}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort();
}

/** `tar -tv` lines in the same terms (the last entry of a name wins, as on extraction). */
function listTar(stdout: string): string[] {
  const byName = new Map<string, string>();
  for (const line of stdout.split('\n').filter(Boolean)) {
    const m = /^(\S+) (\d+)\/(\d+)\s+(\d+) \S+ \S+ (.*)$/.exec(line);
    assert.ok(m, `unexpected tar -tv line ${JSON.stringify(line)}`);
    const [, mode, uid, gid, size, rest] = m;
    // The seed has no hardlinks and mutations keep type flags, so '-' is a regular file with its own data.
    const name = rest!.replace(/ -> .*$/, '');
    byName.set(name, `${mode!.startsWith('l') ? 'l' : mode} ${uid}/${gid} ${mode!.startsWith('-') ? size : '-'} ${name}`);
  }
  return [...byName.values()].sort();
}

describe('fuzz: tsgraph and GNU tar frame a layer the same way', () => {
  const tmp = suiteTmpfs('256m');

  it(`${CASES} layers with re-spelled numeric fields: accepted ones hold exactly what tar -tv lists (names, owners, modes, sizes)`, async () => {
    const entries: RawEntry[] = [
      { name: 'etc/', type: '5' },
      { name: 'etc/a', data: 'x'.repeat(700) },
      { name: 'etc/b', data: 'y'.repeat(100), pax: [['path', 'etc/b-long-name']] },
      { name: 'etc/c', type: '2', linkname: 'a' },
      { name: 'd/', type: '5' },
      { name: 'd/e', data: Buffer.alloc(1030, 0x61) },
    ];
    const seed = Buffer.concat([...entries.map(rawEntry), Buffer.alloc(2 * BLOCK)]);
    const file = join(tmp.dir, 'layer.tar');
    const root = join(tmp.dir, 'root');
    let accepted = 0;
    await fuzz('tar agreement', fuzzConfig(CASES, 0xa9e), async (rng) => {
      const input = mutate(rng, seed);
      fs.mkdirSync(root);
      try {
        const { tar, tap, done } = openLayerTar(Readable.from([input]), 'none');
        done.catch(() => {});
        await applyTar(root, tar, { format: naiveFormat, pax: tap.pax });
        tar.resume();
        await done;
        accepted++;
        fs.writeFileSync(file, input);
        const gnu = spawnSync('tar', ['-tvf', file, '--numeric-owner', '--full-time'], { encoding: 'latin1' });
        // GNU tar lists every header it frames; an archive it cannot read at all is a disagreement too.
        assert.equal(gnu.status, 0, `GNU tar refuses a layer tsgraph accepted: ${gnu.stderr}`);
        assert.deepEqual(listTree(root), listTar(gnu.stdout), 'the same entries, owners, modes and sizes');
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
    assert.ok(accepted > CASES / 10, `enough accepted cases to compare (${accepted})`);
  });
});
