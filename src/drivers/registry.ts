/**
 * Driver selection. Order: `--driver` / `$TSGRAPH_DRIVER`; else the driver a
 * root already uses (recorded in `meta/driver`, or found by its data dir);
 * else overlay where an overlay mount works, then btrfs if the root is on
 * btrfs, then vfs. A root made by one driver is never opened with another:
 * layers would be invisible or misread.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { TsgraphError, UsageError } from '../errors.js';
import type { GraphDriver } from './driver.js';
import { OverlayDriver } from './overlay/overlay.js';
import { VfsDriver } from './vfs/vfs.js';
import { BtrfsDriver } from './btrfs/btrfs.js';
import { AufsDriver } from './aufs/aufs.js';
import { backingFs, cleanupProbes } from './probe.js';

/** The graph drivers tsgraph has. */
export const DRIVER_NAMES = ['overlay', 'btrfs', 'aufs', 'vfs'] as const;
export type DriverName = (typeof DRIVER_NAMES)[number];

/** The driver `name` (one of DRIVER_NAMES) with its home under store root `root`; TSG_USAGE for an unknown name. */
export function createDriver(name: string, root: string): GraphDriver {
  switch (name) {
    case 'overlay':
      return new OverlayDriver(join(root, 'overlay'));
    case 'vfs':
      return new VfsDriver(join(root, 'vfs'));
    case 'btrfs':
      return new BtrfsDriver(join(root, 'btrfs'));
    case 'aufs':
      return new AufsDriver(join(root, 'aufs'));
    default:
      throw new UsageError('TSG_USAGE', `unknown driver ${JSON.stringify(name)} (known: ${DRIVER_NAMES.join(', ')})`);
  }
}

async function overlayWorks(root: string): Promise<boolean> {
  const status = await new OverlayDriver(join(root, 'overlay')).status();
  return status.probes.every((p) => p.ok);
}

/** Picks and records the driver for `root`. */
export async function selectDriver(root: string, requested?: string): Promise<GraphDriver> {
  // Probe dirs a killed command left (doctor's in the root, status()'s in a
  // driver home), whichever driver this root ends up with.
  for (const dir of [root, ...DRIVER_NAMES.map((d) => join(root, d))]) cleanupProbes(dir);
  const recordPath = join(root, 'meta', 'driver');
  // A root from before meta/driver existed still tells by its data dir.
  const recorded = fs.existsSync(recordPath)
    ? fs.readFileSync(recordPath, 'utf8').trim()
    : DRIVER_NAMES.find((d) => fs.existsSync(join(root, d, d === 'aufs' ? 'meta' : 'layers')) && fs.readdirSync(join(root, d, d === 'aufs' ? 'meta' : 'layers')).length > 0);
  if (requested && recorded && requested !== recorded) {
    throw new TsgraphError(
      'TSG_DRIVER_MISMATCH',
      `${root} holds ${recorded} layers; refusing to open it with the ${requested} driver (use another --root, or --driver ${recorded})`,
      { data: { root, recorded, requested } },
    );
  }
  let name = requested ?? recorded;
  if (!name) {
    fs.mkdirSync(root, { recursive: true });
    name = (await overlayWorks(root)) ? 'overlay' : backingFs(root) === 'btrfs' ? 'btrfs' : 'vfs';
  }
  const driver = createDriver(name, root);
  if (!recorded) {
    fs.mkdirSync(join(root, 'meta'), { recursive: true });
    fs.writeFileSync(recordPath, `${name}\n`);
  }
  return driver;
}
