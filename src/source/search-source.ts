/**
 * A short name (`busybox`, `me/app:1`) when registries.json lists
 * `unqualifiedSearchRegistries`: each search registry is tried in order, like
 * containers-registries.conf's unqualified-search-registries, and the first
 * that has the image is used. Its full name becomes the image's name and its
 * description says which short name it stood for ("Resolved
 * 127.0.0.1:5000/busybox:latest (short name busybox) to sha256:…"). Without
 * a search list, a short name means docker.io, as always.
 */
import { NotFoundError, TsgraphError, UsageError } from '../errors.js';
import type { Descriptor } from '../oci/schemas.js';
import { parseReference } from '../reference.js';
import type { RegistryClient } from '../registry/client.js';
import { shortNameCandidates } from '../registry/registries-config.js';
import { RegistrySource } from './registry-source.js';
import type { BlobStream, FetchedManifest, ImageSource } from './source.js';

const NOT_FOUND = new Set(['TSG_NOT_FOUND', 'TSG_REPO_NOT_FOUND', 'TSG_TAG_NOT_FOUND']);

export class SearchSource implements ImageSource {
  #chosen: RegistrySource;
  #resolved = false;

  constructor(
    private readonly spec: string,
    private readonly client: RegistryClient,
  ) {
    // Until resolved: what docker would pull (the default registry).
    this.#chosen = new RegistrySource(parseReference(spec), client);
  }

  get description(): string {
    return this.#resolved ? `${this.#chosen.description} (short name ${this.spec})` : this.#chosen.description;
  }

  get imageName(): string {
    return this.#chosen.imageName;
  }

  /** The full references tried, in order (after resolve). */
  candidates: string[] = [];

  async resolve(signal?: AbortSignal): Promise<FetchedManifest> {
    const search = (await this.client.hostsConfig()).searchRegistries;
    if (search.length === 0) return this.#chosen.resolve(signal);
    this.candidates = shortNameCandidates(this.spec, search);
    // --creds are meant for one registry; a short name could hand them to
    // any search registry on the way to the one that has the image.
    if (this.candidates.length > 1 && this.client.credentials.explicit) {
      throw new UsageError('TSG_USAGE', `--creds with the short name ${this.spec} would be offered to each search registry in turn (${search.join(', ')}); give the full name`, {
        data: { shortName: this.spec, tried: [] },
      });
    }
    const failures: Array<{ candidate: string; err: TsgraphError }> = [];
    for (const candidate of this.candidates) {
      const source = new RegistrySource(parseReference(candidate), this.client);
      try {
        const top = await source.resolve(signal);
        this.#chosen = source;
        this.#resolved = true;
        return top;
      } catch (err) {
        if (!(err instanceof TsgraphError) || err.code === 'TSG_ABORTED' || signal?.aborted) throw err;
        failures.push({ candidate, err });
      }
    }
    // Something other than "not there" (down, refused) matters more than the misses.
    const other = failures.find((f) => !NOT_FOUND.has(f.err.code));
    if (other) throw other.err;
    throw new NotFoundError('TSG_REPO_NOT_FOUND', `short name ${this.spec} is in none of the search registries (tried ${this.candidates.join(', ')})`, {
      data: { shortName: this.spec, tried: this.candidates },
    });
  }

  manifest(desc: Descriptor, signal?: AbortSignal): Promise<FetchedManifest> {
    return this.#chosen.manifest(desc, signal);
  }

  blob(desc: Descriptor, offset: number, signal?: AbortSignal): Promise<BlobStream> {
    return this.#chosen.blob(desc, offset, signal);
  }

  close(): void {
    this.#chosen.close();
  }
}
