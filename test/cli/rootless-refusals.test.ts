/**
 * Rootless refusals (issue 10): where a piece rootless operation needs is
 * missing, every verb that uses a store refuses at once, in one line naming
 * the piece (TSG_ROOTLESS, exit 7), and leaves nothing behind (the default
 * root is not even created). Real users made by the test: one with no
 * /etc/subuid entry, one with a range but no newuidmap on its PATH. The
 * kernel knobs (user.max_user_namespaces, kernel.unprivileged_userns_clone)
 * cannot be turned off on a shared machine: they are read from a /proc/sys
 * copy the test writes.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { missingPieces, requireRootless } from '../../src/rootless/requirements.js';
import { idMapArgs, parseSubIds } from '../../src/rootless/subid.js';
import { TsgraphError } from '../../src/errors.js';
import { type TestUser, ensureUidmap, makeUser } from '../helpers/rootless-user.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

/** Every verb that opens a store, with arguments that would otherwise get past parsing. */
const VERBS: string[][] = [
  ['pull', 'oci:/nonexistent'],
  ['images'],
  ['mount', 'busybox'],
  ['umount', 'c1'],
  ['diff', 'c1'],
  ['commit', 'c1', 'localhost/x:1'],
  ['rm', 'c1'],
  ['rmi', 'busybox'],
  ['gc'],
  ['check'],
  ['containers'],
  ['inspect', 'busybox'],
  ['push', 'busybox', '127.0.0.1:1/x:1'],
  ['unshare', '--', 'true'],
];

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${stderr}`);
  return lines[0]!;
}

describe('rootless refusals: every verb refuses early, naming the missing piece', () => {
  let dir: string;
  let noSubid: TestUser;
  let noHelper: TestUser;
  let bin: string;

  before(() => {
    ensureUidmap();
    dir = makeTempDir('tsgraph-rootless-refusals-');
    fs.chmodSync(dir, 0o755);
    noSubid = makeUser(dir);
    noHelper = makeUser(dir, 720896);
    // A PATH with what tsgraph would run but newuidmap (/bin is /usr/bin on Debian: it cannot stay on it).
    bin = join(dir, 'bin');
    fs.mkdirSync(bin);
    for (const tool of ['unshare', 'newgidmap', 'sh']) fs.symlinkSync(join('/usr/bin', tool), join(bin, tool));
  });
  after(() => {
    noSubid?.remove();
    noHelper?.remove();
    removeDir(dir);
  });

  it('a user with no /etc/subuid or /etc/subgid entry: each verb refuses in one line naming both files', async () => {
    for (const args of VERBS) {
      const r = await noSubid.cli(args);
      const what = `tsgraph ${args.join(' ')}`;
      assert.equal(r.code, 7, `${what}: ${r.stderr}`);
      const line = oneLine(r.stderr);
      assert.match(line, new RegExp(`^tsgraph: rootless tsgraph needs a subordinate uid range for ${noSubid.name} in /etc/subuid .*; and a subordinate gid range for ${noSubid.name} in /etc/subgid .*\\(TSG_ROOTLESS\\)$`), what);
      assert.equal(r.stdout, '', what);
    }
    assert.ok(!fs.existsSync(join(noSubid.home, '.local')), 'no root was created');
  });

  it('doctor is not refused: it reports the missing pieces as FAIL lines and exits 0', async () => {
    const r = await noSubid.cli(['doctor']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^FAIL\s+rootless\s+missing: a subordinate uid range for .* in \/etc\/subuid/m);
    assert.match(r.stdout, /^FAIL\s+rootless\s+missing: a subordinate gid range for .* in \/etc\/subgid/m);
  });

  it('--json gives the code and the missing pieces as data', async () => {
    const r = await noSubid.cli(['--json', 'images']);
    assert.equal(r.code, 7);
    const err = JSON.parse(r.stdout || r.stderr) as { error?: { code: string; data: { missing: string[] } }; code?: string; data?: { missing: string[] } };
    const e = err.error ?? (err as { code: string; data: { missing: string[] } });
    assert.equal(e.code, 'TSG_ROOTLESS');
    assert.equal(e.data!.missing.length, 2);
  });

  it('verbs that need no store still work for that user (login/logout, help)', async () => {
    const r = await noSubid.cli(['logout', '127.0.0.1:1'], { DOCKER_CONFIG: join(noSubid.home, 'docker') });
    assert.notEqual(r.code, 7, r.stderr);
    assert.doesNotMatch(r.stderr, /TSG_ROOTLESS/);
    const h = await noSubid.cli(['unshare', '--help']);
    assert.equal(h.code, 0, h.stderr);
  });

  it('a user whose PATH has no newuidmap: each verb refuses in one line naming newuidmap', async () => {
    for (const args of VERBS) {
      const r = await noHelper.cli(args, { PATH: bin });
      const what = `tsgraph ${args.join(' ')}`;
      assert.equal(r.code, 7, `${what}: ${r.stderr}`);
      const line = oneLine(r.stderr);
      assert.match(line, /^tsgraph: rootless tsgraph needs newuidmap on PATH \(Debian\/Ubuntu package uidmap.*\(TSG_ROOTLESS\)$/, what);
      assert.doesNotMatch(line, /subuid|newgidmap/, what);
    }
    assert.ok(!fs.existsSync(join(noHelper.home, '.local')), 'no root was created');
  });

  it('with everything there, the same user gets past the gate (an empty store lists nothing)', async () => {
    const r = await noHelper.cli(['images', '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
  });

  it('user namespaces switched off (user.max_user_namespaces = 0, kernel.unprivileged_userns_clone = 0) are named', () => {
    const procSys = join(dir, 'proc-sys');
    fs.mkdirSync(join(procSys, 'user'), { recursive: true });
    fs.mkdirSync(join(procSys, 'kernel'), { recursive: true });
    fs.writeFileSync(join(procSys, 'user', 'max_user_namespaces'), '0\n');
    fs.writeFileSync(join(procSys, 'kernel', 'unprivileged_userns_clone'), '0\n');
    const subuid = join(dir, 'subuid');
    fs.writeFileSync(subuid, 'root:100000:65536\n0:200000:65536\n');
    const facts = { procSys, subuidFile: subuid, subgidFile: subuid, env: { PATH: '/usr/bin' } };
    const { missing, plan } = missingPieces(facts);
    assert.equal(plan, undefined);
    assert.equal(missing.length, 2, missing.join('\n'));
    assert.match(missing[0]!, /user\.max_user_namespaces is 0/);
    assert.match(missing[1]!, /kernel\.unprivileged_userns_clone is 0/);
    assert.throws(() => requireRootless(facts), (e: TsgraphError) => e.code === 'TSG_ROOTLESS' && /^rootless tsgraph needs unprivileged user namespaces/.test(e.message) && !e.message.includes('\n'));
    fs.writeFileSync(join(procSys, 'user', 'max_user_namespaces'), '15000\n');
    fs.writeFileSync(join(procSys, 'kernel', 'unprivileged_userns_clone'), '1\n');
    const ok = requireRootless(facts);
    // Both lines for root (by name and by uid) are used, in file order.
    assert.deepEqual(ok.uidRanges, [{ start: 100000, count: 65536 }, { start: 200000, count: 65536 }]);
  });

  it('subuid parsing: by name or uid, comments and malformed lines skipped; the map is 0 = the user, then the ranges', () => {
    const text = '# comment\nalice:100000:65536\nbob:x:1\n1001:300000:10\nalice:400000:0\ncarol:1:2:3\nalice:4294967290:100\n';
    assert.deepEqual(parseSubIds(text, 'alice', 1001), [{ start: 100000, count: 65536 }, { start: 300000, count: 10 }]);
    assert.deepEqual(parseSubIds(text, 'nobody-here', 7), []);
    assert.deepEqual(idMapArgs(1001, [{ start: 100000, count: 65536 }, { start: 300000, count: 10 }]), ['0', '1001', '1', '1', '100000', '65536', '65537', '300000', '10']);
  });
});
