/**
 * A container runtime's whole cycle on tsgraph's library: open a store, pull
 * with progress and an AbortSignal, create a container layer without
 * mounting it, take its mount spec, mount it in a new mount namespace of
 * its own and run runc there, stream the container's changes as a layer
 * tar, commit them as an image, tag it, remove the container.
 *
 * Run as root (mounts and runc need it), with util-linux and runc on PATH:
 *   node --import tsx examples/runtime-cycle.ts [ROOT] [IMAGE]
 * ROOT defaults to a fresh temp dir, IMAGE to busybox (any image with `sh`;
 * `oci:DIR[:TAG]` reads an OCI layout). The last line printed is a JSON summary.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { type ContainerMountSpec, type PullEvent, Store, TsgraphError, runtimeSpec } from 'tsgraph';

const run = promisify(execFile);
const work = fs.mkdtempSync(join(tmpdir(), 'tsgraph-runtime-'));
const root = process.argv[2] ?? join(work, 'store');
const image = process.argv[3] ?? 'busybox';

/** mount(8) arguments that mount `spec` on `target` (in whatever mount namespace runs them). */
function mountArgs(spec: ContainerMountSpec, target: string): string[] {
  if (spec.idmap) throw new Error('an idmapped spec needs each layer dir idmapped first (or use store.mount)');
  if (spec.type === 'bind') return ['--bind', ...(spec.readOnly ? ['-o', 'ro'] : []), spec.source, target];
  if (spec.type !== 'overlay') throw new Error(`this example mounts overlay and bind specs, not ${spec.type}`);
  // `data` is the classic option string, set only when it fits one page; past that use
  // fsopen/fsconfig with spec.options (one lowerdir+ per layer), as tsgraph's own mount does.
  if (spec.data === undefined) throw new Error('too many layers for a classic mount option string');
  return ['-t', 'overlay', '-o', spec.readOnly ? `ro,${spec.data}` : spec.data, spec.source, target];
}

const cancel = new AbortController();
process.once('SIGINT', () => cancel.abort());
const signal = AbortSignal.any([cancel.signal, AbortSignal.timeout(10 * 60_000)]);
const summary: Record<string, unknown> = { work };

try {
  // 1. Open the store; `await using` closes it at the end of the block.
  await using store = await Store.open({ root });

  // 2. Pull, with progress events and a signal that cancels it (a later pull resumes).
  const onProgress = (e: PullEvent) => {
    if (e.type === 'resolved') console.log(`pull: ${e.source} is ${e.digest}`);
    if (e.type === 'blob-done' && e.kind === 'layer') console.log(`pull: layer ${e.digest.slice(7, 19)} (${e.fetched} bytes fetched)`);
    if (e.type === 'unpack-done') console.log(`pull: unpacked ${e.digest.slice(7, 19)} (${e.size} bytes)`);
  };
  const pulled = await store.pull(image, { signal, onProgress });
  summary.image = pulled.image.name;

  // 3. A container layer on the image, not mounted.
  const container = await store.createContainer(pulled.image.name, { name: `runtime-${randomBytes(3).toString('hex')}`, signal });
  summary.container = container.name;
  try {
    // 4. Its mount as data.
    const spec = await store.mountSpec(container.name);
    summary.mountType = spec.type;

    // 5. An OCI bundle whose rootfs is a directory the container is mounted on, in runc's namespace only.
    const bundle = join(work, 'bundle');
    fs.mkdirSync(join(bundle, 'rootfs'), { recursive: true });
    const config = runtimeSpec(await store.imageConfig(container.image), {
      rootPath: 'rootfs',
      user: { uid: 0, gid: 0 }, // the rootfs is not mounted here, so no /etc/passwd lookup
      args: ['sh', '-c', 'echo written by runc > /hello.txt; cat /hello.txt'],
      hostname: container.name,
    });
    fs.writeFileSync(join(bundle, 'config.json'), JSON.stringify(config, null, 2));

    // 6. A new mount namespace (nothing leaks into ours): mount the spec there, run runc on it.
    //    The mount ends with the namespace; the writes stay in the container layer.
    const id = `tsgraph-example-${randomBytes(4).toString('hex')}`;
    const script = 'cd "$1"; id=$2; shift 2; mount "$@"; exec runc run "$id"';
    try {
      const { stdout } = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-ec', script, 'sh', bundle, id, ...mountArgs(spec, join(bundle, 'rootfs'))], { signal });
      console.log(`runc: ${stdout.trim()}`);
      summary.runc = stdout.trim();
    } finally {
      await run('runc', ['delete', '--force', id]).catch(() => {});
    }

    // 7. The container's changes as a layer tar stream.
    const tarPath = join(work, 'changes.tar');
    const diff = await store.diffStream(container.name, { signal, onProgress: (p) => p.done && console.log(`diff: ${p.bytes} bytes`) });
    await pipeline(diff, fs.createWriteStream(tarPath));
    summary.diffTar = tarPath;

    // 8. Commit the changes as an image, 9. give it a second name.
    const committed = await store.commit(container.name, 'localhost/runtime-example:v1', { message: 'made by examples/runtime-cycle.ts' });
    const tagged = await store.tag(committed.image.name, 'localhost/runtime-example:latest');
    summary.committed = committed.image.name;
    summary.tagged = tagged.name;
    summary.digest = tagged.manifestDigest;
    const history = await store.history(tagged.name);
    summary.history = history.map((h) => h.createdBy);
  } finally {
    // 10. Remove the container (its layer and record); the images stay until rmi.
    await store.removeContainer(container.name);
  }
  summary.containersLeft = store.listContainers().length;
} catch (err) {
  // Every failure is a TsgraphError with a stable code (ERROR_CODES lists them).
  if (err instanceof TsgraphError) console.error(`tsgraph: ${err.message} (${err.code}, ${err.category})`);
  throw err;
}
console.log(JSON.stringify(summary));
