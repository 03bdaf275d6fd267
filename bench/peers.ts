/**
 * The contenders of the pull + mount race. Each run gets a fresh directory
 * on a fresh filesystem; `setup` (not timed) starts what the tool needs,
 * `pullMount` is the timed step (pull, then mount, as a user would type them),
 * `repull` times pulling the same image again, `teardown` unmounts and stops.
 * The exact commands are listed in docs/benchmarks.md.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ImageInfo } from './images.js';
import { type Scratch, daemon, have, log, run, sh, unmountBelow } from './util.js';

export interface Target {
  scratch: Scratch;
  /** This contender's dir on the scratch fs. */
  dir: string;
  registry: string;
  image: ImageInfo;
}

export interface Contender {
  name: string;
  kind: 'tsgraph' | 'peer' | 'floor';
  /** Compressions it takes part in. */
  compressions: Array<'gzip' | 'zstd'>;
  setup?(t: Target): Promise<void>;
  /** Timed: returns ms. */
  pullMount(t: Target): Promise<number>;
  repull?(t: Target): Promise<number>;
  teardown?(t: Target): Promise<void>;
}

/** The tsgraph under test: this checkout's dist/ by default, another one's with --tsgraph DIR (A/B runs). */
export const tsgraphDir = { root: join(import.meta.dirname, '..') };
export const cli = () => join(tsgraphDir.root, 'dist', 'cli', 'main.js');
/** Per-command limit: a hung pull fails its cell instead of the whole run. */
const LIMIT = 240_000;

function ref(t: Target): string {
  return `${t.registry}/${t.image.name}`;
}

/** A file every image has: proves the mount shows the image. */
function checkRootfs(path: string): void {
  if (!fs.existsSync(join(path, 'etc', 'debian_version'))) throw new Error(`${path} does not show the image (no etc/debian_version)`);
}

export const tsgraph: Contender = {
  name: 'tsgraph',
  kind: 'tsgraph',
  compressions: ['gzip', 'zstd'],
  async pullMount(t) {
    const root = join(t.dir, 'root');
    const pull = await run(['node', cli(), '--root', root, 'pull', '-q', ref(t)], { timeoutMs: LIMIT });
    const mount = await run(['node', cli(), '--root', root, 'mount', '--name', 'bench', ref(t)], { timeoutMs: LIMIT });
    checkRootfs(mount.stdout.trim());
    return pull.ms + mount.ms;
  },
  async repull(t) {
    return (await run(['node', cli(), '--root', join(t.dir, 'root'), 'pull', '-q', ref(t)])).ms;
  },
  async teardown(t) {
    await run(['node', cli(), '--root', join(t.dir, 'root'), 'umount', 'bench'], { check: false });
  },
};

function podmanArgs(t: Target): string[] {
  return ['podman', '--root', join(t.dir, 'storage'), '--runroot', join(t.dir, 'run'), '--storage-driver', 'overlay',
    '--tmpdir', join(t.dir, 'tmp'), '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
}
function podmanEnv(t: Target): NodeJS.ProcessEnv {
  // Our own storage.conf: the host's (mount_program, additional stores…) must not change the result.
  return { ...process.env, CONTAINERS_STORAGE_CONF: join(t.dir, 'storage.conf') };
}

export const podman: Contender = {
  name: 'podman',
  kind: 'peer',
  compressions: ['gzip', 'zstd'],
  async setup(t) {
    fs.mkdirSync(join(t.dir, 'tmp'), { recursive: true });
    fs.writeFileSync(join(t.dir, 'storage.conf'), `[storage]\ndriver = "overlay"\nrunroot = "${join(t.dir, 'run')}"\ngraphroot = "${join(t.dir, 'storage')}"\n`);
  },
  async pullMount(t) {
    const env = podmanEnv(t);
    const pull = await run([...podmanArgs(t), 'pull', '-q', '--tls-verify=false', ref(t)], { env, timeoutMs: LIMIT });
    const mount = await run([...podmanArgs(t), 'image', 'mount', ref(t)], { env, timeoutMs: LIMIT });
    checkRootfs(mount.stdout.trim());
    return pull.ms + mount.ms;
  },
  async repull(t) {
    return (await run([...podmanArgs(t), 'pull', '-q', '--tls-verify=false', ref(t)], { env: podmanEnv(t) })).ms;
  },
  async teardown(t) {
    await run([...podmanArgs(t), 'image', 'unmount', '--all', '--force'], { env: podmanEnv(t), check: false });
  },
};

/** A private containerd per run: own root, state, sockets; overlayfs snapshotter; CRI off. */
const containerds = new Map<string, { stop(): Promise<void> }>();
function ctr(t: Target): string[] {
  return ['ctr', '--address', join(t.dir, 'c.sock'), '--namespace', 'bench'];
}

export const containerd: Contender = {
  name: 'containerd',
  kind: 'peer',
  compressions: ['gzip', 'zstd'],
  async setup(t) {
    const cfg = join(t.dir, 'config.toml');
    fs.writeFileSync(
      cfg,
      [
        'version = 2',
        `root = "${join(t.dir, 'root')}"`,
        `state = "${join(t.dir, 'state')}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]',
        '[grpc]',
        `  address = "${join(t.dir, 'c.sock')}"`,
        '[ttrpc]',
        `  address = "${join(t.dir, 'c.sock.ttrpc')}"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${join(t.dir, 'opt')}"`,
      ].join('\n') + '\n',
    );
    const child = daemon(['containerd', '--config', cfg], join(t.dir, 'containerd.log'));
    const stop = async () => {
      child.kill('SIGTERM');
      for (let i = 0; i < 100 && child.exitCode === null && child.signalCode === null; i++) await sleep(50);
      child.kill('SIGKILL');
    };
    containerds.set(t.dir, { stop });
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`containerd exited: ${fs.readFileSync(join(t.dir, 'containerd.log'), 'utf8').slice(-1000)}`);
      if ((await run([...ctr(t), 'version'], { check: false, timeoutMs: 5000 })).code === 0) return;
      await sleep(50);
    }
    throw new Error('containerd did not answer within 10 s');
  },
  async pullMount(t) {
    const mnt = join(t.dir, 'mnt');
    fs.mkdirSync(mnt);
    const pull = await run([...ctr(t), 'images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref(t)], { timeoutMs: LIMIT });
    const mount = await run([...ctr(t), 'images', 'mount', '--snapshotter', 'overlayfs', ref(t), mnt], { timeoutMs: LIMIT });
    checkRootfs(mnt);
    return pull.ms + mount.ms;
  },
  async repull(t) {
    return (await run([...ctr(t), 'images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref(t)])).ms;
  },
  async teardown(t) {
    await run([...ctr(t), 'images', 'unmount', '--rm', join(t.dir, 'mnt')], { check: false, timeoutMs: 30_000 });
    unmountBelow(t.dir);
    await containerds.get(t.dir)?.stop();
    containerds.delete(t.dir);
  },
};

export const skopeoUmoci: Contender = {
  name: 'skopeo+umoci',
  kind: 'peer',
  // umoci 0.4.7 (bookworm) refuses zstd layers: "blob is not correct mediatype".
  compressions: ['gzip'],
  async setup(t) {
    fs.writeFileSync(join(t.dir, 'policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  },
  async pullMount(t) {
    const copy = await run(['skopeo', '--policy', join(t.dir, 'policy.json'), 'copy', '--quiet', '--src-tls-verify=false',
      `docker://${ref(t)}`, `oci:${join(t.dir, 'oci')}:img`], { timeoutMs: LIMIT });
    const unpack = await run(['umoci', 'unpack', '--image', `${join(t.dir, 'oci')}:img`, join(t.dir, 'bundle')], { timeoutMs: LIMIT });
    checkRootfs(join(t.dir, 'bundle', 'rootfs'));
    return copy.ms + unpack.ms;
  },
};

function blobUrl(t: Target, digest: string): string {
  return `http://${t.registry}/v2/${t.image.name.split(':')[0]}/blobs/${digest}`;
}

/** Floor (gzip): every layer at once, curl | pigz -d | tar -x into its own dir (like overlay layers). */
export const floorGzip: Contender = {
  name: 'floor: curl|pigz -d|tar -x, layers in parallel',
  kind: 'floor',
  compressions: ['gzip'],
  async pullMount(t) {
    const lines = t.image.layers.map((l, i) => {
      const d = join(t.dir, `l${i}`);
      return `mkdir -p '${d}'; (curl -sf '${blobUrl(t, l.digest)}' | pigz -d | tar -x -C '${d}') & pids+=($!)`;
    });
    const r = await sh(`pids=()\n${lines.join('\n')}\nfor p in "\${pids[@]}"; do wait $p; done`, { timeoutMs: LIMIT });
    checkRootfs(join(t.dir, 'l0'));
    return r.ms;
  },
};

/** Floor (zstd): layers in turn, curl | zstd -d | tar -x. */
export const floorZstd: Contender = {
  name: 'floor: curl|zstd -d|tar -x, layers in turn',
  kind: 'floor',
  compressions: ['zstd'],
  async pullMount(t) {
    const lines = t.image.layers.map((l, i) => {
      const d = join(t.dir, `l${i}`);
      return `mkdir -p '${d}'; curl -sf '${blobUrl(t, l.digest)}' | zstd -d -q -c | tar -x -C '${d}'`;
    });
    const r = await sh(lines.join('\n'), { timeoutMs: LIMIT });
    checkRootfs(join(t.dir, 'l0'));
    return r.ms;
  },
};

export const ALL: Contender[] = [tsgraph, podman, containerd, skopeoUmoci, floorGzip, floorZstd];

/** The Debian package that brings each tool the bench runs. */
const PACKAGES: Record<string, string> = {
  podman: 'podman',
  ctr: 'containerd',
  containerd: 'containerd',
  skopeo: 'skopeo',
  umoci: 'umoci',
  pigz: 'pigz',
  zstd: 'zstd',
  curl: 'curl',
  debootstrap: 'debootstrap',
  'docker-registry': 'docker-registry',
};

const NEEDS: Record<string, string[]> = {
  tsgraph: [],
  podman: ['podman'],
  containerd: ['containerd', 'ctr'],
  'skopeo+umoci': ['skopeo', 'umoci'],
  [floorGzip.name]: ['curl', 'pigz'],
  [floorZstd.name]: ['curl', 'zstd'],
};

/**
 * Installs the missing tools with apt-get (unless --no-install); returns the
 * contenders that can run, and prints a line for each one skipped and why.
 */
export async function availableContenders(install: boolean): Promise<{ ready: Contender[]; skipped: Array<{ name: string; why: string }> }> {
  const base = ['debootstrap', 'skopeo', 'docker-registry', 'zstd', 'pigz'];
  const wanted = new Set<string>(base.filter((b) => !have(b)));
  for (const c of ALL) for (const b of NEEDS[c.name] ?? []) if (!have(b)) wanted.add(b);
  if (wanted.size > 0 && install) {
    const pkgs = [...new Set([...wanted].map((b) => PACKAGES[b]!))];
    log(`installing ${pkgs.join(' ')} with apt-get`);
    const r = await run(['apt-get', 'install', '-y', '--no-install-recommends', ...pkgs], {
      check: false,
      timeoutMs: 600_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.code !== 0) log(`apt-get install failed (${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
  }
  const ready: Contender[] = [];
  const skipped: Array<{ name: string; why: string }> = [];
  for (const c of ALL) {
    const missing = (NEEDS[c.name] ?? []).filter((b) => !have(b));
    if (missing.length === 0) ready.push(c);
    else skipped.push({ name: c.name, why: `${missing.join(', ')} not installed${install ? ' (apt-get install failed)' : ' (--no-install)'}` });
  }
  if (!fs.existsSync(cli())) throw new Error(`${cli()} is missing: run npm run build first (npm run bench does)`);
  skipped.push({ name: 'skopeo+umoci (zstd)', why: 'umoci 0.4.7 refuses zstd layers (blob is not correct mediatype)' });
  return { ready, skipped };
}
