/**
 * The store root's privacy and bounded creation (util/private-root.ts), the
 * CLI's escaping of untrusted text (cli/output.ts), and the content store's
 * temp-ingest bookkeeping (a live writer holds its flock; a dead one is
 * reclaimed by the next writer).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { jsonText, safeCell, safeText } from '../../src/cli/output.js';
import { ContentStore } from '../../src/content/store.js';
import { TsgraphError } from '../../src/errors.js';
import { mkdirBounded, openPrivateRoot } from '../../src/util/private-root.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const mode = (p: string) => fs.statSync(p).mode & 0o7777;

describe('private store root', () => {
  let dir: string;
  let umask: number;
  before(() => {
    dir = makeTempDir('tsgraph-root-unit-');
    umask = process.umask(0); // the loosest umask: modes must still come out private
  });
  after(() => {
    process.umask(umask);
    removeDir(dir);
  });

  it('creates missing parents one by one (0755) and the root itself 0700, with the store dirs 0700', () => {
    const root = join(dir, 'a', 'b', 'root');
    assert.equal(openPrivateRoot(root), true);
    assert.equal(mode(join(dir, 'a')), 0o755);
    assert.equal(mode(root), 0o700);
    for (const d of ['content', 'content/blobs', 'content/blobs/sha256', 'content/ingest', 'meta', 'locks']) assert.equal(mode(join(root, d)), 0o700, d);
  });

  it('does not create a missing root when asked not to', () => {
    const root = join(dir, 'nothing', 'root');
    assert.equal(openPrivateRoot(root, { create: false }), false);
    assert.equal(fs.existsSync(join(dir, 'nothing')), false);
  });

  it('refuses a path through a file, and a file as root, with TSG_USAGE', () => {
    fs.writeFileSync(join(dir, 'file'), '');
    for (const p of [join(dir, 'file', 'root'), join(dir, 'file')]) {
      assert.throws(
        () => openPrivateRoot(p),
        (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_USAGE' && /not a directory/.test(e.message),
      );
    }
  });

  it('fails (does not spin) where mkdir cannot create: procfs', () => {
    // Run in a child with a deadline: a spinning sync mkdir could not be stopped in-process.
    const code = `import('${join(process.cwd(), 'src/util/private-root.ts')}').then((m) => { try { m.mkdirBounded('/proc/nope/x'); } catch (e) { console.log(e.code); } })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.signal, null, 'finished by itself');
    assert.equal(r.stdout.trim(), 'TSG_USAGE');
  });

  it('tightens a loose existing root and its store dirs, not the layer trees', () => {
    const root = join(dir, 'loose');
    openPrivateRoot(root);
    const tree = join(root, 'vfs', 'layers', 'abc', 'root', 'usr');
    mkdirBounded(tree);
    fs.mkdirSync(join(root, 'meta', 'images', 'x'), { recursive: true });
    spawnSync('chmod', ['-R', 'go+rX', root]);
    openPrivateRoot(root);
    for (const d of ['.', 'content/ingest', 'meta/images', 'meta/images/x', 'vfs', 'vfs/layers', 'vfs/layers/abc']) assert.equal(mode(join(root, d)) & 0o077, 0, d);
    assert.equal(mode(tree) & 0o077, 0o055, 'layer content keeps its modes');
  });

  it('refuses a store others could write to (they may have planted links), and dirs in it that are not its own', () => {
    const root = join(dir, 'planted');
    openPrivateRoot(root);
    fs.chmodSync(root, 0o777);
    assert.throws(() => openPrivateRoot(root), /was writable by group or others/);
    fs.chmodSync(root, 0o700);
    // A store dir replaced by a symlink (review: root then made dirs in the link's target).
    fs.rmSync(join(root, 'locks'), { recursive: true });
    fs.symlinkSync(join(dir, 'elsewhere'), join(root, 'locks'));
    assert.throws(() => openPrivateRoot(root), /locks is not a directory \(a symlink\)/);
    assert.ok(!fs.existsSync(join(dir, 'elsewhere')));
    fs.rmSync(join(root, 'locks'));
    fs.mkdirSync(join(root, 'locks'));
    fs.chownSync(join(root, 'locks'), 65534, 65534);
    assert.throws(() => openPrivateRoot(root), /locks is owned by uid 65534/);
  });

  it('a website with a content/ dir is not a store (review: its tree was made 0700)', () => {
    const site = join(dir, 'site');
    fs.mkdirSync(join(site, 'content', 'posts'), { recursive: true });
    fs.mkdirSync(join(site, 'layouts'));
    for (const d of ['.', 'content', 'content/posts', 'layouts']) fs.chmodSync(join(site, d), 0o755);
    assert.throws(() => openPrivateRoot(site), /neither empty nor a tsgraph store/);
    assert.equal(mode(join(site, 'content', 'posts')) & 0o777, 0o755);
    assert.deepEqual(fs.readdirSync(site).sort(), ['content', 'layouts']);
  });

  it('mkdirBounded names what it was making', () => {
    assert.throws(() => mkdirBounded(join(dir, 'file', 'x'), 'the bundle directory'), /cannot use .* as the bundle directory/);
  });
});

describe('escaping untrusted text for terminals', () => {
  const evil = 'a\x1b]0;t\x07\x1b[2J\u009b1m\u202eb\u200bc\x7f';
  it('human text shows control, C1 and bidi characters as escapes and keeps newlines', () => {
    const s = safeText(`${evil}\n`);
    assert.doesNotMatch(s, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b\u202e]/);
    assert.equal(s, 'a\\x1b]0;t\\x07\\x1b[2J\\x9b1m\\u202eb\\u200bc\\x7f\n');
    assert.equal(safeCell('x\ny\tz'), 'x\\x0ay\\x09z');
  });
  it('JSON keeps the exact value but no raw DEL/C1/bidi bytes', () => {
    const text = jsonText({ v: evil });
    assert.doesNotMatch(text, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b\u202e]/);
    assert.equal(JSON.parse(text).v, evil);
  });
});

describe('temp ingests', () => {
  let dir: string;
  before(() => {
    dir = makeTempDir('tsgraph-temp-ingest-');
  });
  after(() => removeDir(dir));

  it('a live temp writer is held; after it dies without commit the next writer reclaims it', async () => {
    const root = join(dir, 'r');
    openPrivateRoot(root);
    // A "killed" writer: another process makes a temp ingest and exits without commit or discard.
    const code = `import('${join(process.cwd(), 'src/content/store.ts')}').then((m) => { const w = new m.ContentStore('${root}').tempWriter(); w.write(Buffer.alloc(1000)); setTimeout(() => process.exit(0), 50); })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const content = new ContentStore(root);
    const temps = () => content.ingests().filter((i) => i.temporary);
    assert.equal(temps().length, 1);
    assert.equal(content.abandonedTemporaryIngests().length, 1, 'its writer is gone');

    const live = new ContentStore(root).tempWriter();
    try {
      assert.equal(temps().length, 1, 'the next writer reclaimed the dead one; only its own is left');
      assert.equal(content.abandonedTemporaryIngests().length, 0, 'a live writer is not abandoned');
      assert.deepEqual(await content.reclaimTemporaryIngests(), []);
      assert.equal(temps().length, 1);
    } finally {
      live.discard();
    }
    assert.equal(temps().length, 0);
    assert.deepEqual(fs.readdirSync(join(root, 'locks')).filter((n) => n.startsWith('ingest-tmp-')), [], 'no lock files pile up');
  });

  it('an in-memory (config/manifest) ingest left by a dead process is temporary too; a resumable download is not', async () => {
    const root = join(dir, 'mem');
    openPrivateRoot(root);
    // A dead writer of each kind: `mem-` (writeBlob: a config with a timestamp inside) and a layer download.
    const code = `import('${join(process.cwd(), 'src/content/store.ts')}').then(async (m) => {
      const c = new m.ContentStore('${root}');
      const a = await c.writer('mem-sha256:${'a'.repeat(64)}', { digest: 'sha256:${'a'.repeat(64)}', size: 100 });
      a.write(Buffer.alloc(10));
      const b = await c.writer('layer-sha256:${'b'.repeat(64)}', { digest: 'sha256:${'b'.repeat(64)}', size: 100 });
      b.write(Buffer.alloc(10));
      process.exit(0);
    })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const content = new ContentStore(root);
    assert.deepEqual(
      content.ingests().map((i) => [i.ref.slice(0, 4), i.temporary]).sort(),
      [['laye', false], ['mem-', true]],
    );
    const reclaimed = await content.reclaimTemporaryIngests();
    assert.deepEqual(reclaimed.map((i) => i.ref.slice(0, 4)), ['mem-']);
    assert.deepEqual(content.ingests().map((i) => i.ref.slice(0, 4)), ['laye'], 'the download stays for its resume');
  });
});

describe('a root another user could redirect, or a directory that is not a store', () => {
  let base: string;
  beforeEach(() => {
    base = makeTempDir('tsgraph-root-trust-');
  });
  afterEach(() => removeDir(base));

  it("refuses another user's symlink as the root and leaves its target alone (review finding)", () => {
    // A root-owned 0755 tree, and a shared, non-sticky dir where user 65534 planted a symlink to it.
    const victim = join(base, 'victim');
    fs.mkdirSync(join(victim, 'sub'), { recursive: true, mode: 0o755 });
    fs.chmodSync(victim, 0o755);
    const shared = join(base, 'shared');
    fs.mkdirSync(shared);
    fs.chmodSync(shared, 0o777);
    fs.symlinkSync(victim, join(shared, 'store'));
    fs.lchownSync(join(shared, 'store'), 65534, 65534);
    assert.throws(() => openPrivateRoot(join(shared, 'store')), (e: unknown) => e instanceof TsgraphError && e.code === 'TSG_USAGE' && /symlink owned by uid 65534/.test(e.message));
    assert.equal(fs.statSync(victim).mode & 0o777, 0o755, 'the target keeps its mode');
    assert.deepEqual(fs.readdirSync(victim), ['sub'], 'no store dirs were made in it');
    // Our own symlink to a store of ours is fine, but not below a dir others can change.
    fs.chmodSync(shared, 0o755);
    fs.rmSync(join(shared, 'store'));
    const mine = join(base, 'mine');
    fs.mkdirSync(join(base, 'real'));
    fs.symlinkSync(join(base, 'real'), mine);
    assert.equal(openPrivateRoot(mine), true);
    const loose = join(base, 'loose');
    fs.mkdirSync(loose);
    fs.chmodSync(loose, 0o777);
    assert.throws(() => openPrivateRoot(join(loose, 'store')), (e: unknown) => e instanceof TsgraphError && /can be changed by other users/.test(e.message));
  });

  it('refuses to make a non-empty directory that is not a store private (--root /etc)', () => {
    const etc = join(base, 'etc');
    fs.mkdirSync(join(etc, 'ssh'), { recursive: true });
    fs.chmodSync(etc, 0o755);
    fs.writeFileSync(join(etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    assert.throws(() => openPrivateRoot(etc), (e: unknown) => e instanceof TsgraphError && /neither empty nor a tsgraph store/.test(e.message));
    assert.equal(fs.statSync(etc).mode & 0o777, 0o755);
    assert.deepEqual(fs.readdirSync(etc).sort(), ['passwd', 'ssh']);
  });
});
