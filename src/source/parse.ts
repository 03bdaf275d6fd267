/**
 * Picks the ImageSource for what the user typed:
 *   oci:DIR[:TAG]           an OCI image layout on disk
 *   docker://REF or REF     a registry reference
 */
import { parseReference } from '../reference.js';
import type { RegistryClient } from '../registry/client.js';
import { OciLayoutSource } from './oci-layout.js';
import { isShortName } from '../registry/registries-config.js';
import { RegistrySource } from './registry-source.js';
import { SearchSource } from './search-source.js';
import type { ImageSource } from './source.js';

/** Splits `oci:DIR[:TAG]`; a colon followed by something with a slash belongs to DIR. */
export function parseOciSpec(spec: string): { dir: string; tag: string | undefined } {
  const body = spec.slice('oci:'.length);
  const i = body.lastIndexOf(':');
  if (i > 0 && !body.slice(i + 1).includes('/') && body.slice(i + 1).length > 0) {
    return { dir: body.slice(0, i), tag: body.slice(i + 1) };
  }
  return { dir: body, tag: undefined };
}

/** `client` is called only for registry references (an OCI layout needs no network). */
export function openSource(spec: string, client: () => RegistryClient): ImageSource {
  if (spec.startsWith('oci:')) {
    const { dir, tag } = parseOciSpec(spec);
    return new OciLayoutSource(dir, tag);
  }
  const name = spec.startsWith('docker://') ? spec.slice('docker://'.length) : spec;
  const ref = parseReference(name);
  // A short name may stand for a search registry's image (registries.json).
  if (isShortName(name)) return new SearchSource(name, client());
  return new RegistrySource(ref, client());
}
