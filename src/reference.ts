/**
 * Image references, normalised the way docker does it:
 *   busybox            → docker.io/library/busybox:latest
 *   me/app:1           → docker.io/me/app:1
 *   localhost:5000/a   → localhost:5000/a:latest
 *   a@sha256:…         → digest pins the content; a tag beside it is kept for display only
 */
import { type Digest, parseDigest } from './digest.js';
import { UsageError } from './errors.js';

/** The registry of a reference that names none (like docker). */
export const DEFAULT_REGISTRY = 'docker.io';
/** The host that really serves docker.io's API. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

// Path components: lowercase alphanumerics separated by '.', '_', '__' or dashes.
const COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
// A host: DNS labels or an IPv4 address, optional port; or a bracketed IPv6.
const DOMAIN_RE = /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
const NAME_MAX = 255;
const HEX64_RE = /^[a-f0-9]{64}$/;

/** A parsed image reference: registry, repository, tag and/or digest. */
export interface Reference {
  /** Registry host as written in the name (`docker.io`, `localhost:5000`). */
  readonly registry: string;
  /** Repository path inside the registry (`library/busybox`). */
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: Digest | undefined;
}

function invalid(input: string, why: string): UsageError {
  return new UsageError('TSG_INVALID_REFERENCE', `invalid reference ${JSON.stringify(input)}: ${why}`, {
    data: { reference: input },
  });
}

/** Parses and normalises a reference. Missing tag and digest → `latest`. */
export function parseReference(input: string): Reference {
  if (input.length === 0) throw invalid(input, 'empty');
  // An image ID is never a name: `sha256:<64 hex>` would otherwise parse as repository `sha256` with that tag.
  if (/^sha256:[a-f0-9]{64}$/.test(input)) throw invalid(input, 'an image ID or digest is not a name');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1));
    } catch (err) {
      throw invalid(input, (err as Error).message);
    }
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid(input, `bad tag ${JSON.stringify(tag)}`);
  }
  let registry = DEFAULT_REGISTRY;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // docker's rule: the first component is a host if it looks like one.
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      registry = first;
      path = rest.slice(slash + 1);
    }
  }
  if (!DOMAIN_RE.test(registry)) throw invalid(input, `bad registry host ${JSON.stringify(registry)}`);
  if (registry === 'index.docker.io') registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !path.includes('/')) path = `library/${path}`;
  if (path.length === 0) throw invalid(input, 'no repository name');
  for (const component of path.split('/')) {
    if (!COMPONENT_RE.test(component)) {
      const hint = component !== component.toLowerCase() ? ' (repository names must be lowercase)' : '';
      throw invalid(input, `bad path component ${JSON.stringify(component)}${hint}`);
    }
  }
  // docker's reference package: a name that spells an image ID would shadow (or be shadowed by) that ID.
  if (HEX64_RE.test(path.split('/').at(-1)!)) throw invalid(input, 'cannot specify 64-byte hexadecimal strings as a repository name');
  if (registry.length + 1 + path.length > NAME_MAX) throw invalid(input, `name longer than ${NAME_MAX} characters`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository: path, tag, digest };
}

/** `registry/repository` */
export function fullName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** Canonical string: `docker.io/library/busybox:latest`, `…@sha256:…`. */
export function formatReference(ref: Reference): string {
  let s = fullName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** Short form like `docker images` shows: `busybox:latest`, `me/app:1`. */
export function familiarName(ref: Reference): string {
  let name = fullName(ref);
  if (ref.registry === DEFAULT_REGISTRY) {
    name = ref.repository.startsWith('library/') ? ref.repository.slice(8) : ref.repository;
  }
  if (ref.tag !== undefined) name += `:${ref.tag}`;
  if (ref.digest !== undefined) name += `@${ref.digest}`;
  return name;
}

/** The host:port to talk HTTP to. docker.io is served by registry-1.docker.io. */
export function apiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? DOCKER_HUB_API_HOST : registry;
}

/** What to put in the URL's manifests/<x> slot: the digest if pinned, else the tag. */
export function manifestSelector(ref: Reference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
