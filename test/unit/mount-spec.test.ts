/**
 * Issue 10, containers as data: Store.createContainer makes a container
 * layer without mounting it; Store.mountSpec gives the mount as data, and a
 * runtime that mounts that data itself — in a private mount namespace, with
 * the raw fs-context parameters (fsopen/fsconfig…) or the classic option
 * string (mount -o) — gets the very tree Store.mount gives, for overlay,
 * vfs and btrfs. Bad labels, overlay options and idmaps are refused before
 * anything is made; a classic string is offered only when it fits a page and
 * needs no escaping.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Store } from '../../src/store/store.js';
import type { ContainerMountSpec } from '../../src/mount/mount-spec.js';
import { classicData, containerMountSpec, MAX_MOUNT_DATA, overlayPlan } from '../../src/mount/spec-data.js';
import { isMountPoint, readMountInfo } from '../../src/mount/index.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { makeImage, makeLayer, writeOciLayout } from '../helpers/image-builder.js';
import { type LoopFs, makeBtrfs } from '../helpers/btrfs.js';
import { type Tmpfs, mountTmpfs } from '../helpers/tmpfs.js';

const FIXTURE = join(REPO_ROOT, 'fixtures', 'busybox');
const ADDON = join(REPO_ROOT, 'build', 'Release', 'tsgraph_native.node');
const HAS_SELINUX = fs.existsSync('/sys/fs/selinux');

/** `find -printf` of a tree: path, owner, mode, type, size; sorted. */
const LIST = `find "$T" -mindepth 1 -printf '%P %U:%G %m %y %s\\n' | LC_ALL=C sort`;

/**
 * Mounts `spec` the way a runtime would, in a new private mount namespace
 * (nothing leaks into ours), lists the tree, and leaves with the namespace.
 * `via`: classic mount(2) with `spec.data`, or the fs-context parameters
 * through the raw addon (fsopen, fsconfig each, create, fsmount, move_mount).
 */
function listThroughSpec(spec: ContainerMountSpec, target: string, via: 'classic' | 'fscontext'): string {
  const env = { ...process.env, T: target, SPEC: JSON.stringify(spec), ADDON };
  if (spec.type === 'bind') {
    return execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount --bind "$SRC" "$T" && ${LIST}`], {
      env: { ...env, SRC: spec.source },
      encoding: 'utf8',
    });
  }
  if (via === 'classic') {
    assert.ok(spec.data, 'a classic option string');
    return execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t overlay "$SOURCE" -o "$DATA" "$T" && ${LIST}`], {
      env: { ...env, SOURCE: spec.source, DATA: spec.data },
      encoding: 'utf8',
    });
  }
  const js = `const n = require(process.env.ADDON); const s = JSON.parse(process.env.SPEC);
    n.fsMount(s.type, s.options, process.env.T, s.readOnly ? n.mountApiConstants.MOUNT_ATTR_RDONLY : 0);
    process.stdout.write(require('child_process').execFileSync('sh', ['-c', process.argv[1]], { encoding: 'utf8' }));`;
  return execFileSync('unshare', ['-m', '--propagation', 'private', process.execPath, '-e', js, LIST], { env, encoding: 'utf8' });
}

describe('Store.createContainer and Store.mountSpec', () => {
  let tmpfs: Tmpfs;
  let btrfs: LoopFs;
  before(() => {
    tmpfs = mountTmpfs('1g');
    btrfs = makeBtrfs('1g');
  });
  after(() => {
    const left = readMountInfo().filter((m) => m.mountPoint.startsWith(`${tmpfs?.dir}/`) || m.mountPoint.startsWith(`${btrfs?.dir}/`));
    btrfs?.cleanup();
    tmpfs?.cleanup();
    assert.deepEqual(left.map((m) => m.mountPoint), [], 'every mount made by the suite is gone');
  });

  for (const driver of ['overlay', 'vfs', 'btrfs']) {
    describe(`${driver} driver`, () => {
      let store: Store;
      const dir = () => (driver === 'btrfs' ? btrfs.dir : tmpfs.dir);
      before(async () => {
        store = await Store.open({ root: join(dir(), `root-${driver}`), driver });
        await store.pull(`oci:${FIXTURE}`);
        // Three layers that override one file (each size differs) and white one out: a wrong layer order shows.
        const layout = join(dir(), `stack-${driver}`);
        const l1 = await makeLayer([{ path: 'a/', type: 'directory' }, { path: 'a/file', content: '1' }, { path: 'a/gone', content: 'x' }]);
        const l2 = await makeLayer([{ path: 'a/', type: 'directory' }, { path: 'a/file', content: '22' }, { path: 'a/.wh.gone', content: '' }]);
        const l3 = await makeLayer([{ path: 'a/', type: 'directory', mode: 0o700 }, { path: 'a/file', content: '333', uid: 7, gid: 8 }, { path: 'new/x', content: 'n' }]);
        writeOciLayout(layout, [{ tag: 'v1', image: makeImage({ layers: [l1, l2, l3] }) }]);
        await store.pull(`oci:${layout}:v1`);
      });
      after(async () => {
        await store?.close();
      });

      it('createContainer makes the layer and mounts nothing; progress reports the unpack', async () => {
        const events: string[] = [];
        const c = await store.createContainer('busybox', { name: 'made', onProgress: (e) => events.push(e.type) });
        assert.equal(c.name, 'made');
        assert.equal(c.path, undefined);
        assert.equal(c.state, undefined, 'the record is ready');
        assert.ok(events.length > 0, 'progress events');
        assert.equal(store.listContainers().find((x) => x.name === 'made')?.mounted, false);
        assert.equal(isMountPoint(join(store.root, driver, 'layers', c.id, 'merged')), false);
        await assert.rejects(store.createContainer('busybox', { name: 'made' }), { code: 'TSG_EXISTS' });
        await store.removeContainer('made');
      });

      it('a runtime mounting the spec itself (classic string and fs-context) sees the tree Store.mount gives', async () => {
        await store.createContainer(`localhost/stack-${driver}:v1`, { name: 'same' });
        // Some content of the container's own: a new file, a changed one, a deleted one.
        const { path } = await store.mount('same');
        fs.writeFileSync(join(path, 'motd'), 'hello\n');
        fs.appendFileSync(join(path, 'new/x'), 'more');
        fs.rmSync(join(path, 'a/file'));
        const viaStore = execFileSync('sh', ['-c', LIST], { env: { ...process.env, T: path }, encoding: 'utf8' });
        await store.umount('same');
        assert.equal(isMountPoint(path), false);

        const spec = await store.mountSpec('same');
        const target = join(tmpfs.dir, `target-${driver}`);
        fs.mkdirSync(target, { recursive: true });
        assert.match(viaStore, /^motd 0:0 644 f 6$/m);
        assert.match(viaStore, /^new\/x 0:0 644 f 5$/m);
        assert.match(viaStore, /^a 0:0 700 d/m, "the topmost layer's dir");
        assert.doesNotMatch(viaStore, /^a\/(file|gone) /m, viaStore);
        if (driver === 'overlay') {
          assert.equal(spec.type, 'overlay');
          assert.equal(spec.source, 'tsgraph');
          assert.deepEqual(spec.options[0], ['source', 'tsgraph']);
          assert.deepEqual(spec.options.filter(([k]) => k === 'lowerdir+').map(([, v]) => v), spec.layers.lowers);
          assert.deepEqual(spec.options.filter(([k]) => k === 'upperdir' || k === 'workdir').map(([, v]) => v), [spec.layers.upper, spec.layers.work]);
          assert.equal(listThroughSpec(spec, target, 'classic'), viaStore, 'classic mount(2) with spec.data');
          assert.equal(listThroughSpec(spec, target, 'fscontext'), viaStore, 'fsconfig of spec.options');
        } else {
          assert.equal(spec.type, 'bind');
          assert.deepEqual(spec.options, []);
          assert.equal(spec.data, undefined);
          assert.equal(spec.layers.upper, spec.source);
          assert.equal(listThroughSpec(spec, target, 'classic'), viaStore, 'a bind mount of spec.source');
        }
        assert.equal(isMountPoint(target), false, 'the runtime mounted in its own namespace');
        await store.removeContainer('same');
      });

      it('mountSpec carries read-only, the label and the overlay options in mount order; bind mounts refuse them', async () => {
        await store.createContainer('busybox', { name: 'opts' });
        const ro = await store.mountSpec('opts', { readOnly: true });
        assert.equal(ro.readOnly, true);
        const label = 'system_u:object_r:container_file_t:s0:c1,c2';
        if (driver === 'overlay') {
          const spec = await store.mountSpec('opts', { label, overlayOptions: ['default_permissions', 'xino=off'] });
          assert.deepEqual(spec.options.slice(-3), [['context', label], ['default_permissions', null], ['xino', 'off']]);
          assert.match(spec.data!, /,context="system_u:object_r:container_file_t:s0:c1,c2",default_permissions,xino=off$/);
        } else {
          await assert.rejects(store.mountSpec('opts', { label }), { code: 'TSG_UNSUPPORTED' });
          await assert.rejects(store.mountSpec('opts', { overlayOptions: ['xino=off'] }), { code: 'TSG_USAGE' });
        }
        const idmap = { uidMap: [{ containerId: 0, hostId: 100000, size: 65536 }], gidMap: [{ containerId: 0, hostId: 100000, size: 65536 }] };
        const idmapped = await store.mountSpec('opts', { idmap });
        assert.deepEqual(idmapped.idmap, idmap);
        if (driver === 'overlay') {
          // The upper's maps: the caller's plus the spare on-disk id for overlay's own files (docs/idmapped-mounts.md).
          const withSpare = [...idmap.uidMap, { containerId: 4294967294, hostId: 0, size: 1 }];
          assert.deepEqual(idmapped.upperIdmap, { uidMap: withSpare, gidMap: withSpare });
        } else {
          assert.equal(idmapped.upperIdmap, undefined);
        }
        await assert.rejects(store.mountSpec('no-such'), { code: 'TSG_NOT_FOUND' });
        await store.removeContainer('opts');
      });

      it('bad labels, overlay options and idmaps are TSG_USAGE before any container is made', async () => {
        const before = store.listContainers().length;
        const bad: Array<[string, object]> = [
          ['label with NUL', { label: 'a:b:c\0' }],
          ['label with a quote', { label: 'a:b:c:s0"' }],
          ['label not a context', { label: 'unconfined' }],
          ['label too long', { label: `a:b:c:${'s'.repeat(300)}` }],
          ['lowerdir', { overlayOptions: ['lowerdir=/etc'] }],
          ['upperdir', { overlayOptions: ['upperdir=/tmp'] }],
          ['workdir', { overlayOptions: ['workdir=/tmp'] }],
          ['datadir+', { overlayOptions: ['datadir+=/tmp'] }],
          ['metacopy=on', { overlayOptions: ['metacopy=on'] }],
          ['redirect_dir=on', { overlayOptions: ['redirect_dir=on'] }],
          ['index=on', { overlayOptions: ['index=on'] }],
          ['userxattr', { overlayOptions: ['userxattr'] }],
          ['an unknown option', { overlayOptions: ['nosuchopt'] }],
          ['a comma', { overlayOptions: ['xino=off,lowerdir=/x'] }],
          ['a flag with a value', { overlayOptions: ['default_permissions=1'] }],
          ['volatile (the upper could never be mounted again)', { overlayOptions: ['volatile'] }],
          ['overlapping maps', { idmap: { uidMap: [{ containerId: 0, hostId: 1000, size: 10 }, { containerId: 5, hostId: 5000, size: 1 }], gidMap: [{ containerId: 0, hostId: 1, size: 1 }] } }],
          ['a size 0 map', { idmap: { uidMap: [{ containerId: 0, hostId: 1000, size: 0 }], gidMap: [{ containerId: 0, hostId: 1, size: 1 }] } }],
          ['an id past 2^32-2', { idmap: { uidMap: [{ containerId: 0, hostId: 4294967295, size: 1 }], gidMap: [{ containerId: 0, hostId: 1, size: 1 }] } }],
          ['no gid map', { idmap: { uidMap: [{ containerId: 0, hostId: 1000, size: 1 }] } }],
          ['userns and maps', { idmap: { userns: '/proc/self/ns/user', uidMap: [] } }],
          ['a userns that is no namespace', { idmap: { userns: '/etc/passwd' } }],
          ['a userns fd that is no namespace', { idmap: { userns: 0 } }],
          ['a userns fd out of range', { idmap: { userns: -1 } }],
        ];
        for (const [what, options] of bad) {
          // Label and overlay options on a bind driver are refused as such (TSG_UNSUPPORTED / TSG_USAGE): the overlay cases say more.
          const want = driver !== 'overlay' && 'label' in options ? /TSG_USAGE|TSG_UNSUPPORTED/ : /TSG_USAGE/;
          await assert.rejects(store.mount('busybox', { name: 'refused', ...options }), (err: { code: string; message: string }) => {
            assert.match(err.code, want, `${what}: ${err.code} ${err.message}`);
            return true;
          }, what);
        }
        assert.equal(store.listContainers().length, before, 'nothing was made');
      });

      it('a container mounted with one idmap is not handed out with another (TSG_IN_USE); the same options add a reference', async () => {
        const a = { uidMap: [{ containerId: 0, hostId: 200000, size: 65536 }], gidMap: [{ containerId: 0, hostId: 200000, size: 65536 }] };
        const b = { uidMap: [{ containerId: 0, hostId: 300000, size: 65536 }], gidMap: [{ containerId: 0, hostId: 300000, size: 65536 }] };
        const first = await store.mount('busybox', { name: 'keyed', idmap: a });
        assert.equal(fs.statSync(join(first.path, 'bin')).uid, 200000);
        await assert.rejects(store.mount('keyed', { idmap: b }), { code: 'TSG_IN_USE' });
        await assert.rejects(store.mount('keyed'), { code: 'TSG_IN_USE' }, 'no idmap is another mount too');
        const again = await store.mount('keyed', { idmap: a });
        assert.equal(again.path, first.path);
        await store.umount('keyed');
        await store.umount('keyed');
        assert.equal(isMountPoint(first.path), false);
        const plain = await store.mount('keyed');
        assert.equal(fs.statSync(join(plain.path, 'bin')).uid, 0, 'mounted afresh without the idmap');
        await store.removeContainer('keyed');
      });

      it('a createContainer killed after the claim or after the layer is made leaves nothing the next open keeps', async () => {
        for (const step of ['mount:after-claim', 'mount:after-layer-create']) {
          const js = `const { Store } = await import(${JSON.stringify(join(REPO_ROOT, 'src/store/store.ts'))});
            const s = await Store.open({ root: ${JSON.stringify(store.root)}, driver: ${JSON.stringify(driver)} });
            await s.createContainer('busybox', { name: 'killed' });`;
          const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', js], {
            cwd: REPO_ROOT,
            env: { ...process.env, TSGRAPH_CRASH_AT: step },
            encoding: 'utf8',
            timeout: 60_000,
          });
          assert.equal(r.signal, 'SIGKILL', `${step} reached: ${r.stderr}`);
          const again = await Store.open({ root: store.root, driver });
          try {
            assert.equal(again.listContainers().find((c) => c.name === 'killed'), undefined, `${step}: repaired at open`);
            const made = await again.createContainer('busybox', { name: 'killed' });
            assert.equal(made.state, undefined);
            await again.removeContainer('killed');
          } finally {
            await again.close();
          }
        }
      });

      if (driver === 'overlay' && !HAS_SELINUX) {
        it('a label on a kernel without SELinux is TSG_UNSUPPORTED, and the container is not kept', async () => {
          await assert.rejects(store.mount('busybox', { name: 'labelled', label: 'system_u:object_r:container_file_t:s0' }), (err: { code: string; message: string }) => {
            assert.equal(err.code, 'TSG_UNSUPPORTED', err.message);
            assert.match(err.message, /SELinux/);
            return true;
          });
          assert.equal(store.listContainers().find((c) => c.name === 'labelled'), undefined);
        });
      }
    });
  }
});

describe('classic option strings', () => {
  const spec = (lowers: string[]) => ({ type: 'overlay' as const, lowers, upper: '/u/diff', work: '/u/work', options: ['index=off'] });

  it('joins the lowers topmost first, as the lowerdir+ order', () => {
    assert.equal(classicData(overlayPlan(spec(['/a', '/b']))), 'lowerdir=/a:/b,upperdir=/u/diff,workdir=/u/work,index=off');
  });

  it('is undefined past one page (the kernel would cut it and mount other layers) and exactly at it still given', () => {
    const long = Array.from({ length: 40 }, (_, i) => `/${'x'.repeat(100)}/${i}`);
    assert.equal(classicData(overlayPlan(spec(long))), undefined);
    const s = containerMountSpec(spec(long));
    assert.equal(s.data, undefined);
    assert.equal(s.options.filter(([k]) => k === 'lowerdir+').length, 40, 'the fs-context parameters have every layer');
    // Fill to exactly 4095 bytes.
    const fixed = 'lowerdir=,upperdir=/u/diff,workdir=/u/work,index=off'.length;
    const fit = classicData(overlayPlan(spec([`/${'y'.repeat(MAX_MOUNT_DATA - fixed - 1)}`])));
    assert.equal(fit?.length, MAX_MOUNT_DATA);
    assert.equal(classicData(overlayPlan(spec([`/${'y'.repeat(MAX_MOUNT_DATA - fixed)}`]))), undefined);
  });

  it('is undefined when a path would need escaping (, : = \\ " or space)', () => {
    for (const bad of ['/a,b', '/a:b', '/a=b', '/a\\b', '/a"b', '/a b']) {
      assert.equal(classicData(overlayPlan(spec([bad]))), undefined, bad);
      assert.deepEqual(containerMountSpec(spec([bad])).options[1], ['lowerdir+', bad], 'the parameters carry it as is');
    }
  });
});
