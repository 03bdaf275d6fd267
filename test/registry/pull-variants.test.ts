/**
 * Acceptance 2: `tsgraph pull` works for OCI manifests, Docker schema2, OCI
 * indexes and Docker manifest lists (platform picked by default and by
 * --platform), with gzip, zstd and uncompressed layers, from a plain, a
 * Basic-auth, a token-auth and a TLS registry (Debian's docker-registry).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Digest } from '../../src/digest.js';
import { hostPlatform } from '../../src/platform.js';
import { RegistryClient } from '../../src/registry/client.js';
import { CredentialStore } from '../../src/registry/credentials.js';
import { assertBlobsStored } from '../helpers/assert-store.js';
import { parseJsonOutput, runCli } from '../helpers/cli.js';
import { type BuiltBlob, type BuiltImage, makeImage, makeIndex, makeLayer, pushImages } from '../helpers/image-builder.js';
import { type RegistryVariant, type TestRegistry, TEST_PASSWORD, TEST_USER, startRegistry } from '../helpers/registry.js';
import { type Sandbox, makeSandbox, storedImages } from '../helpers/sandbox.js';
import { skopeo } from '../helpers/skopeo.js';
import { Store } from '../../src/store/store.js';

interface PullJson {
  name: string;
  digest: Digest;
  manifestDigest: Digest;
  configDigest: Digest;
  platform: string;
  layers: Array<{ digest: Digest; diffId: Digest; mediaType: string }>;
  blobsFetched: number;
}

interface Catalog {
  ociGzip: BuiltImage;
  docker: BuiltImage;
  ociIndex: { amd64: BuiltImage; arm64: BuiltImage; index: BuiltBlob };
  dockerList: { amd64: BuiltImage; arm64: BuiltImage; index: BuiltBlob };
}

async function buildCatalog(): Promise<Catalog> {
  const file = (path: string, content: string) => ({ path, content });
  const ociGzip = makeImage({
    layers: [await makeLayer([file('a.txt', 'oci gzip one')], 'gzip'), await makeLayer([file('b.txt', 'oci gzip two')], 'gzip')],
  });
  const docker = makeImage({ style: 'docker', layers: [await makeLayer([file('d.txt', 'docker schema2')], 'gzip', 'docker')] });
  const idxAmd = makeImage({
    platform: { os: 'linux', architecture: 'amd64' },
    layers: [await makeLayer([file('z.txt', 'zstd layer for amd64')], 'zstd'), await makeLayer([file('n.txt', 'plain tar layer')], 'none')],
  });
  const idxArm = makeImage({
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    layers: [await makeLayer([file('arm.txt', 'arm64 zstd layer')], 'zstd')],
  });
  const listAmd = makeImage({ style: 'docker', platform: { os: 'linux', architecture: 'amd64' }, layers: [await makeLayer([file('l.txt', 'list amd64')], 'gzip', 'docker')] });
  const listArm = makeImage({ style: 'docker', platform: { os: 'linux', architecture: 'arm64' }, layers: [await makeLayer([file('l.txt', 'list arm64')], 'gzip', 'docker')] });
  return {
    ociGzip,
    docker,
    ociIndex: { amd64: idxAmd, arm64: idxArm, index: makeIndex([idxAmd, idxArm], 'oci') },
    dockerList: { amd64: listAmd, arm64: listArm, index: makeIndex([listAmd, listArm], 'docker') },
  };
}

function imageDigests(img: BuiltImage): string[] {
  return [img.config.digest, ...img.layers.map((l) => l.digest)];
}

const host = hostPlatform();
const variants: RegistryVariant[] = ['plain', 'basic', 'token', 'tls'];

describe('pull from a real registry', () => {
  let catalog: Catalog;
  before(async () => {
    catalog = await buildCatalog();
  });

  for (const variant of variants) {
    describe(`${variant} registry`, () => {
      let reg: TestRegistry;
      let sb: Sandbox;
      // The token registry lets anonymous callers pull only under public/.
      const repo = variant === 'token' ? 'public/test' : 'test';
      const credArgs = variant === 'basic' ? ['--creds', `${TEST_USER}:${TEST_PASSWORD}`] : [];

      before(async () => {
        reg = await startRegistry(variant);
        sb = makeSandbox();
        if (variant === 'tls') sb.trust(reg);
        const client = new RegistryClient({
          credentials: new CredentialStore({ creds: { username: TEST_USER, password: TEST_PASSWORD } }),
          configDirs: [sb.configDir],
        });
        try {
          await pushImages(client, reg.host, repo, 'oci', [catalog.ociGzip]);
          await pushImages(client, reg.host, repo, 'docker', [catalog.docker]);
          await pushImages(client, reg.host, repo, 'index', [catalog.ociIndex.amd64, catalog.ociIndex.arm64], catalog.ociIndex.index);
          await pushImages(client, reg.host, repo, 'list', [catalog.dockerList.amd64, catalog.dockerList.arm64], catalog.dockerList.index);
          if (variant === 'token') await pushImages(client, reg.host, 'private/test', 'oci', [catalog.ociGzip]);
        } finally {
          client.close();
        }
      });
      after(async () => {
        await reg?.stop();
        sb?.cleanup();
      });

      const pull = async (ref: string, extra: string[] = [], root = sb.root) => {
        const r = await runCli(['pull', ref, '--json', ...credArgs, ...extra], { ...sb.env, TSGRAPH_ROOT: root });
        assert.equal(r.code, 0, `pull ${ref} failed: ${r.stdout}${r.stderr}`);
        return parseJsonOutput<PullJson>(r);
      };

      it('pulls an OCI manifest with gzip layers', async () => {
        const out = await pull(`${reg.host}/${repo}:oci`);
        assert.equal(out.manifestDigest, catalog.ociGzip.manifest.digest);
        assert.equal(out.name, `${reg.host}/${repo}:oci`);
        assert.deepEqual(out.layers.map((l) => l.diffId), catalog.ociGzip.layers.map((l) => l.diffId));
        assertBlobsStored(sb.root, [...imageDigests(catalog.ociGzip), catalog.ociGzip.manifest.digest]);
      });

      it('pulls a Docker schema2 manifest', async () => {
        const out = await pull(`${reg.host}/${repo}:docker`);
        assert.equal(out.manifestDigest, catalog.docker.manifest.digest);
        assert.equal(out.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
        assertBlobsStored(sb.root, imageDigests(catalog.docker));
      });

      it('pulls an OCI index: host platform by default, --platform linux/arm64 picks the other (zstd and plain tar layers)', async () => {
        const root = sb.newRoot('index');
        const def = await pull(`${reg.host}/${repo}:index`, [], root);
        const expectDefault = host.architecture === 'arm64' ? catalog.ociIndex.arm64 : catalog.ociIndex.amd64;
        assert.equal(def.digest, catalog.ociIndex.index.digest, 'the name records the index digest');
        assert.equal(def.manifestDigest, expectDefault.manifest.digest);
        assertBlobsStored(root, imageDigests(expectDefault));
        const arm = await pull(`${reg.host}/${repo}:index`, ['--platform', 'linux/arm64'], sb.newRoot('index-arm'));
        assert.equal(arm.manifestDigest, catalog.ociIndex.arm64.manifest.digest);
        assert.equal(arm.platform, 'linux/arm64');
        assertBlobsStored(sb.newRoot('index-arm'), imageDigests(catalog.ociIndex.arm64));
        assert.deepEqual(
          catalog.ociIndex.amd64.layers.map((l) => l.mediaType),
          ['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar'],
        );
      });

      it('pulls a Docker manifest list for both platforms', async () => {
        const amd = await pull(`${reg.host}/${repo}:list`, ['--platform', 'linux/amd64'], sb.newRoot('list-amd'));
        assert.equal(amd.manifestDigest, catalog.dockerList.amd64.manifest.digest);
        const arm = await pull(`${reg.host}/${repo}:list`, ['--platform', 'linux/arm64'], sb.newRoot('list-arm'));
        assert.equal(arm.manifestDigest, catalog.dockerList.arm64.manifest.digest);
        assertBlobsStored(sb.newRoot('list-arm'), imageDigests(catalog.dockerList.arm64));
      });

      it('pulls by digest', async () => {
        const d = catalog.ociGzip.manifest.digest;
        const out = await pull(`${reg.host}/${repo}@${d}`, [], sb.newRoot('by-digest'));
        assert.equal(out.manifestDigest, d);
        assert.equal(out.name, `${reg.host}/${repo}@${d}`);
      });

      it('refuses a platform the index does not have', async () => {
        const root = sb.newRoot('no-platform');
        const r = await runCli(['pull', `${reg.host}/${repo}:index`, '--platform', 'linux/s390x', ...credArgs], { ...sb.env, TSGRAPH_ROOT: root });
        assert.equal(r.code, 3);
        assert.match(r.stderr, /no image for linux\/s390x \(available: linux\/amd64, linux\/arm64\).*TSG_PLATFORM_NOT_FOUND/);
        assert.deepEqual(storedImages(root), []);
      });

      if (variant === 'basic') {
        it('takes credentials from docker config.json auths', async () => {
          sb.dockerLogin(reg.host, TEST_USER, TEST_PASSWORD);
          const r = await runCli(['pull', `${reg.host}/${repo}:oci`, '--json'], { ...sb.env, TSGRAPH_ROOT: sb.newRoot('dockercfg') });
          assert.equal(r.code, 0, r.stderr);
          assert.equal(parseJsonOutput<PullJson>(r).manifestDigest, catalog.ociGzip.manifest.digest);
        });
      }

      if (variant === 'token') {
        it('uses credentials for a private repository and asks the token server with them', async () => {
          const before = reg.token!.requests.length;
          const r = await runCli(['pull', `${reg.host}/private/test:oci`, '--json', '--creds', `${TEST_USER}:${TEST_PASSWORD}`], {
            ...sb.env,
            TSGRAPH_ROOT: sb.newRoot('private'),
          });
          assert.equal(r.code, 0, r.stderr);
          const asked = reg.token!.requests.slice(before);
          assert.ok(asked.some((q) => q.user === TEST_USER && q.scopes.includes('repository:private/test:pull')), JSON.stringify(asked));
        });

        it('caches a token per scope across pulls of one Store (library API)', async () => {
          const store = await Store.open({ root: sb.newRoot('token-cache'), configDirs: [sb.configDir] });
          try {
            const before = reg.token!.requests.length;
            await store.pull(`${reg.host}/${repo}:oci`);
            await store.pull(`${reg.host}/${repo}:docker`);
            const asked = reg.token!.requests.slice(before).filter((q) => q.scopes.includes(`repository:${repo}:pull`));
            assert.equal(asked.length, 1, 'one token served both pulls');
            assert.equal(store.listImages().length, 2);
          } finally {
            await store.close();
          }
        });

        it('pushes with the push scope of the token flow', async () => {
          const root = sb.newRoot('push-token');
          const store = await Store.open({ root, configDirs: [sb.configDir], creds: { username: TEST_USER, password: TEST_PASSWORD } });
          try {
            await store.pull(`${reg.host}/${repo}:oci`);
            const before = reg.token!.requests.length;
            const r = await store.push(`${reg.host}/${repo}:oci`, `${reg.host}/private/pushed:v1`);
            assert.equal(r.digest, catalog.ociGzip.manifest.digest);
            const asked = reg.token!.requests.slice(before);
            assert.ok(asked.some((q) => q.user === TEST_USER && q.scopes.includes('repository:private/pushed:pull,push')), JSON.stringify(asked));
          } finally {
            await store.close();
          }
          const anon = await runCli(['push', `${reg.host}/${repo}:oci`, `${reg.host}/private/nope:v1`], { ...sb.env, TSGRAPH_ROOT: root });
          assert.equal(anon.code, 4, 'pushing anonymously is refused');
        });

        it('refuses a private repository anonymously with TSG_AUTH_REQUIRED', async () => {
          const root = sb.newRoot('private-anon');
          const r = await runCli(['pull', `${reg.host}/private/test:oci`], { ...sb.env, TSGRAPH_ROOT: root });
          assert.equal(r.code, 4);
          assert.match(r.stderr, /requires authentication.*\(TSG_AUTH_REQUIRED\)/);
          assert.deepEqual(storedImages(root), []);
        });
      }

      if (variant === 'tls') {
        it('refuses the registry with TSG_TLS when its CA is not trusted', async () => {
          const r = await runCli(['pull', `${reg.host}/${repo}:oci`], { ...sb.env, TSGRAPH_CONFIG_DIR: sb.newRoot('no-certs'), TSGRAPH_ROOT: sb.newRoot('untrusted') });
          assert.equal(r.code, 6);
          assert.match(r.stderr, /not trusted.*certs\.d\/127\.0\.0\.1:\d+\/ca\.crt.*\(TSG_TLS\)/);
        });
      }

      if (variant === 'plain') {
        it('pulls what skopeo pushed, and skopeo reads back what tsgraph pushed byte for byte', async () => {
          await skopeo(sb.dir, ['copy', '--dest-tls-verify=false', 'oci:fixtures/busybox:latest', `docker://${reg.host}/skopeo/busybox:latest`]);
          const out = await pull(`${reg.host}/skopeo/busybox:latest`, [], sb.newRoot('skopeo'));
          assert.equal(out.layers.length, 1);
          const raw = await skopeo(sb.dir, ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/${repo}:oci`]);
          assert.equal(raw, catalog.ociGzip.manifest.bytes.toString());
        });
      }
    });
  }
});
