/**
 * The differ: a container layer's changes against its image, as a list and
 * as an OCI layer tar. Native for overlay (only the upper is read); when the
 * upper holds redirect/metacopy metadata, or for full-tree drivers, the two
 * trees are compared (for overlay through read-only mounts).
 */
import type { Readable } from 'node:stream';
import type { GraphDriver } from '../drivers/driver.js';
import { TsgraphError } from '../errors.js';
import { type OverlayChange, aufsChanges, naiveChanges, overlayChanges } from '../layer/changes.js';
import { type GenerateOptions, generateLayerTar } from '../layer/generate.js';
import type { OverlayXattrPrefix } from '../layer/whiteout.js';

/** A container layer's changes (A/C/D) and where the layer tar is read from; release() when done. */
export interface LayerDiff {
  changes: OverlayChange[];
  /** `native` (overlay upper) or `naive` (tree comparison). */
  method: 'native' | 'naive';
  /** Why the native diff was not used, when it was not. */
  reason?: string | undefined;
  tarSource: GenerateOptions;
  /** Releases mounts taken for a naive overlay diff. */
  release(): Promise<void>;
}

export async function diffLayer(driver: GraphDriver, id: string, parent: string | undefined): Promise<LayerDiff> {
  const paths = driver.layerPaths(id);
  if (driver.capabilities.layout === 'full') {
    return {
      changes: naiveChanges(paths.parents[0], paths.own),
      method: 'naive',
      reason: `${driver.name} layers are full trees`,
      tarSource: { root: paths.own, source: 'tree' },
      release: async () => {},
    };
  }
  if (driver.capabilities.whiteouts === 'aufs') {
    return {
      changes: aufsChanges(paths.own, paths.parents),
      method: 'native',
      tarSource: { root: paths.own, source: 'tree' },
      release: async () => {},
    };
  }
  // A rootless store's overlay keeps its xattrs in user.overlay.* (OverlayDriver.xattrPrefix).
  const prefix = (driver as { xattrPrefix?: OverlayXattrPrefix }).xattrPrefix;
  try {
    return {
      changes: overlayChanges(paths.own, paths.parents, prefix),
      method: 'native',
      tarSource: { root: paths.own, source: 'overlay-upper', overlayPrefix: prefix },
      release: async () => {},
    };
  } catch (err) {
    if (!(err instanceof TsgraphError) || err.code !== 'TSG_UNSUPPORTED') throw err;
    // Compare the merged views instead.
    const root = await driver.get(id, { readOnly: true });
    let parentRoot: string | undefined;
    try {
      parentRoot = parent === undefined ? undefined : await driver.get(parent, { readOnly: true });
    } catch (e) {
      await driver.put(id);
      throw e;
    }
    return {
      changes: naiveChanges(parentRoot, root),
      method: 'naive',
      reason: err.message,
      tarSource: { root, source: 'tree' },
      release: async () => {
        await driver.put(id);
        if (parent !== undefined) await driver.put(parent);
      },
    };
  }
}

/** The layer tar of a diff; releases the diff's mounts when the stream ends. */
export function diffTar(diff: LayerDiff): Readable {
  const stream = generateLayerTar(diff.changes, diff.tarSource);
  let released = false;
  const release = () => {
    if (!released) {
      released = true;
      void diff.release();
    }
  };
  stream.on('end', release);
  stream.on('error', release);
  stream.on('close', release);
  return stream;
}
