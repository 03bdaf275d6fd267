/**
 * Seeded fuzzing of the parsers that see registry- and user-supplied text:
 * image references, WWW-Authenticate challenges, platforms, `--change`
 * instructions, and OCI manifest / index / image config JSON. Every input
 * must either parse or be refused with a TsgraphError; nothing else may be
 * thrown, and parsing must terminate (each case is bounded by its size).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatReference, parseReference } from '../../src/reference.js';
import { parseChallenges } from '../../src/registry/auth.js';
import { parsePlatform, platformMatches, formatPlatform } from '../../src/platform.js';
import { applyChange } from '../../src/oci/config-changes.js';
import { imageConfigSchema, indexSchema, manifestSchema, parseJson } from '../../src/oci/schemas.js';
import { chainIds } from '../../src/layer/chain.js';
import { fuzz, fuzzConfig, INTERESTING_STRINGS, mutateBytes, type Rng } from './fuzz-kit.js';

const CASES = 10_000;

const REF_SEEDS = [
  'busybox', 'alpine:3.20', 'docker.io/library/busybox:latest', 'localhost:5000/a/b/c:tag_1.2-x',
  `127.0.0.1:5000/app@sha256:${'ab'.repeat(32)}`, `ghcr.io/org/app:1.2@sha256:${'0f'.repeat(32)}`,
  '[::1]:5000/x', 'a.b.c/d__e/f-g:v', 'UPPER/case', 'host:/x',
];
const REF_ALPHABET = 'abcAZ09._-:/@ sha256[]%\u00e9\u0000';

function randomText(rng: Rng, alphabet: string, max: number): string {
  let s = '';
  const n = rng.int(max);
  for (let i = 0; i < n; i++) s += alphabet[rng.int(alphabet.length)];
  return s;
}

function mutateText(rng: Rng, seeds: readonly string[], alphabet: string): string {
  if (rng.chance(0.2)) return randomText(rng, alphabet, 80);
  const base = Buffer.from(rng.pick(seeds));
  return mutateBytes(rng, base).toString(rng.chance(0.5) ? 'utf8' : 'latin1');
}

describe('fuzz: parsers of outside text', () => {
  it(`references (${CASES} cases): parse or TSG_INVALID_REFERENCE, and a parsed one round-trips`, async () => {
    const r = await fuzz('parseReference', fuzzConfig(CASES, 0x5eed01), (rng) => {
      const input = mutateText(rng, REF_SEEDS, REF_ALPHABET);
      const ref = parseReference(input);
      // What we print must parse back to the same thing (tags/digests never lost).
      assert.deepEqual(parseReference(formatReference(ref)), ref, `round trip of ${JSON.stringify(input)}`);
    });
    assert.equal(r.cases, CASES);
    assert.ok(r.accepted > 100 && r.rejected > 100, `both outcomes exercised: ${r.accepted} ok, ${r.rejected} refused`);
    assert.deepEqual([...r.codes.keys()], ['TSG_INVALID_REFERENCE']);
  });

  it(`WWW-Authenticate challenges (${CASES} cases): never throw, bounded output`, async () => {
    const seeds = [
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
      'Basic realm="Registry Realm"',
      'Bearer realm="http://127.0.0.1:1/t", Basic realm=x, Bearer error="insufficient_scope",scope="a:b:c d:e:f"',
      'Bearer realm="a\\"b",service=unquoted,,,',
    ];
    const r = await fuzz('parseChallenges', fuzzConfig(CASES, 0x5eed02), (rng) => {
      const header = mutateText(rng, seeds, 'Bearer realm="\\,= \t:/abcAZ09');
      const out = parseChallenges(header);
      assert.ok(out.length <= header.length, 'no more challenges than characters');
      for (const c of out) {
        assert.match(c.scheme, /^[!#$%&'*+.^_`|~0-9a-z-]+$/);
        for (const v of Object.values(c.params)) assert.ok(v.length <= header.length);
      }
    });
    assert.equal(r.rejected, 0, 'the challenge parser refuses nothing: a bad header yields fewer challenges');
  });

  it(`platforms and --change instructions (${CASES} cases each)`, async () => {
    await fuzz('parsePlatform', fuzzConfig(CASES, 0x5eed03), (rng) => {
      const p = parsePlatform(mutateText(rng, ['linux/amd64', 'linux/arm64/v8', 'windows/amd64', 'linux/arm/v7'], 'linux/amdrv678 '));
      // A parsed platform matches itself once printed and parsed again.
      assert.ok(platformMatches(p, parsePlatform(formatPlatform(p))));
    });
    await fuzz('applyChange', fuzzConfig(CASES, 0x5eed04), (rng) => {
      const seeds = ['CMD ["sh","-c","x"]', 'ENV A=b C="d e"', 'LABEL a=b "c d"=e', 'EXPOSE 80/tcp', 'USER 1:2', 'WORKDIR /x', 'ENTRYPOINT sh', 'VOLUME ["/v"]', 'STOPSIGNAL SIGTERM'];
      const config: Record<string, unknown> = {};
      applyChange(config as never, mutateText(rng, seeds, 'CMDENVLABEL ="[]\\/a1'));
    });
  });

  it(`manifest, index and config JSON (${CASES} cases each): parse or TSG_INVALID_MANIFEST`, async () => {
    const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d(1), size: 100 },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d(2), size: 200 },
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: d(3), size: 300, annotations: { a: 'b' } },
      ],
    };
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: manifest.mediaType, digest: d(4), size: 500, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: manifest.mediaType, digest: d(5), size: 501, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      ],
    };
    const config = {
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: ['sh'], Labels: { a: 'b' }, ExposedPorts: { '80/tcp': {} } },
      rootfs: { type: 'layers', diff_ids: [d(6), d(7)] },
      history: [{ created_by: 'x' }],
    };
    const targets = [
      ['manifest', manifestSchema, manifest],
      ['index', indexSchema, index],
      ['config', imageConfigSchema, config],
    ] as const;
    for (const [what, schema, seed] of targets) {
      const bytes = Buffer.from(JSON.stringify(seed));
      const r = await fuzz(`parseJson(${what})`, fuzzConfig(CASES, 0x5eed10 + what.length), (rng) => {
        const input = rng.chance(0.5) ? mutateBytes(rng, bytes, 6) : Buffer.from(JSON.stringify(mutateJson(rng, seed, 0)));
        const parsed = parseJson(schema as never, input, what) as Record<string, unknown>;
        // What the rest of pull does with a parsed document must not crash either.
        if (what === 'config') {
          const ids = (parsed.rootfs as { diff_ids: string[] }).diff_ids;
          assert.equal(chainIds(ids as never).length, ids.length);
        }
      });
      assert.ok(r.accepted > 50 && r.rejected > 50, `${what}: both outcomes exercised (${r.accepted}/${r.rejected})`);
    }
  });
});

/** Structural mutation: drop or retype a key, nest deeper, swap in interesting values. */
function mutateJson(rng: Rng, value: unknown, depth: number): unknown {
  const weird = (): unknown =>
    rng.pick<unknown>([null, true, 0, -1, 1e308, 2 ** 53 + 1, rng.pick(INTERESTING_STRINGS), [], {}, [[[[]]]], { __proto__: { x: 1 } }, 'sha256:zz']);
  if (depth > 6 || rng.chance(0.08)) return weird();
  if (Array.isArray(value)) {
    const out = value.map((v) => (rng.chance(0.3) ? mutateJson(rng, v, depth + 1) : v));
    if (rng.chance(0.2)) out.push(mutateJson(rng, value[0], depth + 1));
    if (rng.chance(0.1)) out.length = 0;
    return out;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (rng.chance(0.08)) continue;
      out[rng.chance(0.03) ? `${k}\u0000` : k] = rng.chance(0.3) ? mutateJson(rng, v, depth + 1) : v;
    }
    if (rng.chance(0.05)) out['__proto__'] = { polluted: true };
    return out;
  }
  return rng.chance(0.5) ? weird() : value;
}
