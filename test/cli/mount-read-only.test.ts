/**
 * `mount --read-only NAME` of a container mounted read-write is refused with
 * TSG_IN_USE instead of silently handing back the writable mount (issue 11);
 * once unmounted, it mounts read-only.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, parseJsonOutput, runCli } from '../helpers/cli.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';

describe('mount --read-only of a read-write mounted container', () => {
  let tmp: Tmpfs;
  let env: Record<string, string>;
  before(async () => {
    tmp = mountTmpfs('256m');
    env = { TSGRAPH_ROOT: join(tmp.dir, 'root'), TSGRAPH_DRIVER: 'overlay', TSGRAPH_CONFIG_DIR: join(tmp.dir, 'cfg'), DOCKER_CONFIG: join(tmp.dir, 'docker') };
    assert.equal((await runCli(['pull', '-q', `oci:${join(REPO_ROOT, 'fixtures', 'busybox')}`], env)).code, 0);
  });
  after(async () => {
    await runCli(['rm', 'c'], env);
    tmp?.cleanup();
  });

  it('is refused while mounted read-write; read-only once unmounted', async () => {
    const m = await runCli(['mount', '--name', 'c', 'busybox', '--json'], env);
    assert.equal(m.code, 0, m.stderr);
    const path = parseJsonOutput<{ path: string }>(m).path;
    const ro = await runCli(['mount', '--read-only', 'c'], env);
    assert.equal(ro.code, 9);
    assert.match(ro.stderr, /^tsgraph: container c is mounted read-write; unmount it .* \(TSG_IN_USE\)\n$/);
    fs.writeFileSync(join(path, 'still-writable'), 'x'); // the refusal changed nothing
    assert.equal((await runCli(['umount', 'c'], env)).code, 0);
    const again = await runCli(['mount', '--read-only', 'c', '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.throws(() => fs.writeFileSync(join(parseJsonOutput<{ path: string }>(again).path, 'nope'), 'x'), { code: 'EROFS' });
    assert.equal((await runCli(['umount', 'c'], env)).code, 0);
  });
});
