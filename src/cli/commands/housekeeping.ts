/** `tsgraph rm`, `rmi`, `gc`: removing containers, image names, and what nothing references (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { openExistingStore, requireStore } from '../context.js';
import { type GlobalOptions, formatBytes, printJson, writeOut, writeErr } from '../output.js';

export async function rm(names: string[], cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `container ${names[0]}`);
  const removed: string[] = [];
  for (const n of names) removed.push((await store.removeContainer(n)).name);
  if (g.json) printJson({ removed });
  else writeOut(removed.map((n) => `${n}\n`).join(''));
}

export async function rmi(refs: string[], flags: { force?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `image ${refs[0]}`);
  const removed: string[] = [];
  for (const r of refs) removed.push((await store.removeImage(r, { force: flags.force })).name);
  if (g.json) printJson({ removed });
  else writeOut(removed.map((n) => `Untagged: ${n}\n`).join(''));
}

export async function gc(flags: { dryRun?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await openExistingStore(g);
  // No store, nothing to collect (and no root made by a typo).
  const r = store ? await store.gc({ dryRun: flags.dryRun }) : { dryRun: !!flags.dryRun, ingests: [], ingestBytes: 0, layers: [], blobs: [], bytes: 0, errors: [] };
  if (g.json) return printJson(r);
  const verb = r.dryRun ? 'would remove' : 'removed';
  const ingests = r.ingests.length ? `, ${r.ingests.length} abandoned ingest(s) (${formatBytes(r.ingestBytes)})` : '';
  writeOut(`${verb} ${r.layers.length} layer(s) and ${r.blobs.length} blob(s)${ingests}, ${formatBytes(r.bytes)} reclaimed${r.dryRun ? ' (dry run)' : ''}\n`);
  for (const e of r.errors) writeErr(`tsgraph: gc: ${e}\n`);
}
