/**
 * Image history and sizes, from what the store already holds: the config's
 * `history` (created, created-by, comment), the manifest's layer blobs
 * (compressed sizes) and the layer records (bytes each layer unpacked to).
 * Nothing is read from the layers themselves.
 */
import type { ContentStore } from '../content/store.js';
import type { Digest } from '../digest.js';
import { chainIds } from '../layer/chain.js';
import { type ImageConfig, imageConfigSchema, parseJson } from '../oci/schemas.js';
import type { ImageRecord } from './image-store.js';
import type { LayerStore } from './layer-store.js';

/** One layer of an image with its sizes. */
export interface LayerSize {
  /** The blob's digest (as stored and transferred, compressed). */
  digest: Digest;
  /** Digest of the uncompressed tar. */
  diffId: Digest;
  /** The layer's identity in the driver (its stack up to here). */
  chainId: Digest;
  /** The blob's media type (says the compression). */
  mediaType: string;
  /** Bytes of the blob as stored and transferred (compressed unless the media type says otherwise). */
  compressedBytes: number;
  /** Bytes of file content the layer unpacked to; undefined while it is not unpacked (pulled with `unpack: false`). */
  unpackedBytes: number | undefined;
}

/** An image's size, whole and per layer. */
export interface ImageSize {
  /** The image's full name. */
  name: string;
  /** Sum of the layer blobs (what a pull transfers; docker's "compressed size"). */
  compressedBytes: number;
  /** Sum of the unpacked layers; undefined while any layer is not unpacked. */
  unpackedBytes: number | undefined;
  /** Base layer first. */
  layers: LayerSize[];
}

/** One step of an image's history, as `docker history` shows it. */
export interface HistoryEntry {
  /** When the step ran (RFC 3339), when the config says. */
  created: string | undefined;
  /** The command that made it (`/bin/sh -c #(nop) CMD ["sh"]`, `tsgraph commit`). */
  createdBy: string | undefined;
  /** Who made the step, when the config says. */
  author: string | undefined;
  /** The step's comment (commit -m). */
  comment: string | undefined;
  /** True for a step that changed only the config (ENV, CMD, …) and made no layer. */
  emptyLayer: boolean;
  /** The layer the step made (undefined for an empty step). */
  layer: LayerSize | undefined;
}

/** `image`'s config blob, parsed and checked. */
export function imageConfig(image: ImageRecord, content: ContentStore): ImageConfig {
  return parseJson(imageConfigSchema, content.readBlob(image.configDigest), `config ${image.configDigest}`);
}

/** Sizes of `image`'s layers, base first. */
export function layerSizes(image: ImageRecord, layers: LayerStore): LayerSize[] {
  const chains = chainIds(image.layers.map((l) => l.diffId));
  return image.layers.map((l, i) => {
    const chainId = chains[i]!;
    let meta;
    try {
      meta = layers.get(chainId);
    } catch {
      meta = undefined; // unparsable record: size unknown (check reports it)
    }
    const unpacked = meta && !meta.incomplete && typeof meta.size === 'number' ? meta.size : undefined;
    return { digest: l.digest, diffId: l.diffId, chainId, mediaType: l.mediaType, compressedBytes: l.size, unpackedBytes: unpacked };
  });
}

/** `image`'s size: compressed (its blobs) and unpacked (its layers in the driver). */
export function imageSize(image: ImageRecord, layers: LayerStore): ImageSize {
  const sizes = layerSizes(image, layers);
  const unpacked = sizes.every((l) => l.unpackedBytes !== undefined) ? sizes.reduce((n, l) => n + l.unpackedBytes!, 0) : undefined;
  return { name: image.name, compressedBytes: sizes.reduce((n, l) => n + l.compressedBytes, 0), unpackedBytes: unpacked, layers: sizes };
}

/**
 * The history of `image`, newest step first (as `docker history`). Steps
 * marked `empty_layer` have no layer; every other step takes the next layer
 * in order, as docker aligns them. Layers the history does not describe (a
 * config without history, or with fewer steps than layers) are listed with
 * no created-by; steps past the last layer get none.
 */
export function imageHistory(image: ImageRecord, content: ContentStore, layers: LayerStore): HistoryEntry[] {
  const config = imageConfig(image, content);
  const sizes = layerSizes(image, layers);
  const out: HistoryEntry[] = [];
  let next = 0;
  for (const h of config.history ?? []) {
    const empty = h.empty_layer === true;
    out.push({
      created: h.created,
      createdBy: h.created_by,
      author: h.author,
      comment: h.comment,
      emptyLayer: empty,
      layer: empty ? undefined : sizes[next++],
    });
  }
  for (; next < sizes.length; next++) {
    out.push({ created: undefined, createdBy: undefined, author: undefined, comment: undefined, emptyLayer: false, layer: sizes[next] });
  }
  return out.reverse();
}
