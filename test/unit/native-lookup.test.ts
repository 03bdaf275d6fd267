/**
 * src/native.ts finds the addon where node-gyp-build would (the install
 * script decided with node-gyp-build that nothing needs compiling, so run
 * time must agree), but answers the usual layouts without loading it. Each
 * layout a package can have is built in a temp dir and both answers compared.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/cli.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { native, nativeAddonPath } from '../../src/native.js';

const gypBuild = createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string };
const PLATFORM = `${process.platform}-${process.arch}`;

function touch(path: string): void {
  fs.mkdirSync(dirname(path), { recursive: true });
  fs.writeFileSync(path, '');
}

/** Both lookups' answers (or their failure) for package root `root`. */
function both(root: string): { ours: string; theirs: string } {
  const answer = (f: () => string) => {
    try {
      return f();
    } catch (err) {
      return `throws: ${(err as Error).message.split('\n')[0]}`;
    }
  };
  return { ours: answer(() => nativeAddonPath(root)), theirs: answer(() => gypBuild.path(root)) };
}

describe('native addon lookup', () => {
  let dir: string;
  let n = 0;
  const pkg = (files: string[]): string => {
    const root = join(dir, `pkg${n++}`);
    fs.mkdirSync(root);
    fs.writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'tsgraph' }));
    for (const f of files) touch(join(root, f));
    return root;
  };
  before(() => (dir = makeTempDir('tsgraph-lookup-')));
  after(() => removeDir(dir));

  it('this checkout: the same file as node-gyp-build', () => {
    const { ours, theirs } = both(REPO_ROOT);
    assert.equal(ours, theirs);
  });

  const layouts: Array<[string, string[], string | undefined]> = [
    ['an installed package (prebuilds only)', [`prebuilds/${PLATFORM}/tsgraph.glibc.node`, `prebuilds/${PLATFORM}/zstd-napi/binding.js`], `prebuilds/${PLATFORM}/tsgraph.glibc.node`],
    ['a fallback build beside the prebuilds', ['build/Release/tsgraph_native.node', `prebuilds/${PLATFORM}/tsgraph.glibc.node`], 'build/Release/tsgraph_native.node'],
    ['a debug build only', ['build/Debug/tsgraph_native.node', `prebuilds/${PLATFORM}/tsgraph.glibc.node`], 'build/Debug/tsgraph_native.node'],
    ['a build dir without an addon', ['build/config.gypi', `prebuilds/${PLATFORM}/tsgraph.glibc.node`], `prebuilds/${PLATFORM}/tsgraph.glibc.node`],
    ['a musl-only prebuild', [`prebuilds/${PLATFORM}/tsgraph.musl.node`], undefined],
    ['another platform only', ['prebuilds/win32-x64/tsgraph.glibc.node'], undefined],
    ['nothing', [], undefined],
  ];
  for (const [what, files, expected] of layouts) {
    it(`${what}: the same answer as node-gyp-build`, () => {
      const root = pkg(files);
      const { ours, theirs } = both(root);
      assert.equal(ours, theirs);
      if (expected) assert.equal(ours, join(root, expected));
      else assert.match(ours, /^throws: No native build was found/);
    });
  }

  it('native(): TSG_UNSUPPORTED when nothing is found, and when what is found does not load', () => {
    // (Nothing in this file has loaded the addon: native() has no cached binding to return.)
    const env = (root: string, f: () => unknown) => {
      process.env.TSGRAPH_PREBUILD = root;
      try {
        return f();
      } finally {
        delete process.env.TSGRAPH_PREBUILD;
      }
    };
    const none = pkg([]);
    assert.throws(() => env(none, native), (e: Error & { code?: string }) => e.code === 'TSG_UNSUPPORTED' && /neither prebuilt for this machine \(platform=/.test(e.message));
    const bogus = pkg([]);
    fs.mkdirSync(join(bogus, 'build', 'Release'), { recursive: true });
    fs.writeFileSync(join(bogus, 'build', 'Release', 'tsgraph_native.node'), 'not an ELF file');
    assert.throws(() => env(bogus, native), (e: Error & { code?: string }) => e.code === 'TSG_UNSUPPORTED' && e.message.includes(`${bogus}/build/Release/tsgraph_native.node does not load here`));
  });

  it('TSGRAPH_PREBUILD moves the lookup to another root, as node-gyp-build does', () => {
    const root = pkg([`prebuilds/${PLATFORM}/tsgraph.glibc.node`]);
    const other = pkg(['build/Release/tsgraph_native.node']);
    process.env.TSGRAPH_PREBUILD = other;
    try {
      const { ours, theirs } = both(root);
      assert.equal(ours, theirs);
      assert.equal(ours, join(other, 'build/Release/tsgraph_native.node'));
    } finally {
      delete process.env.TSGRAPH_PREBUILD;
    }
  });
});

describe('zstd-napi lookup', () => {
  it('looks only in our package, beside it in its node_modules, then our prebuild; never further up', async () => {
    const { zstdNapiCandidates } = await import('../../src/native.js');
    const root = '/srv/app/node_modules/tsgraph';
    assert.deepEqual(zstdNapiCandidates(root), [
      '/srv/app/node_modules/tsgraph/node_modules/zstd-napi',
      '/srv/app/node_modules/zstd-napi',
      `/srv/app/node_modules/tsgraph/prebuilds/${PLATFORM}/zstd-napi`,
    ]);
    // A checkout (not inside a node_modules): its own node_modules, then its prebuild.
    assert.deepEqual(zstdNapiCandidates('/src/tsgraph'), ['/src/tsgraph/node_modules/zstd-napi', `/src/tsgraph/prebuilds/${PLATFORM}/zstd-napi`]);
    for (const d of zstdNapiCandidates(root)) assert.ok(!d.startsWith('/srv/node_modules') && !d.startsWith('/node_modules'), d);
  });
});
