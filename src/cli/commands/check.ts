/**
 * `tsgraph check [--repair] [--verify-blobs]`: fsck for the store (defined
 * in ../program.ts). Exit codes follow fsck's: 0 clean (reclaimable space is
 * not a fault), 1 every fault found was repaired, 4 damage left (see docs/cli.md).
 */
import type { Command } from '../commander.js';
import type { CheckReport, Finding } from '../../store/check.js';
import { type CommandContext, requireStore } from '../context.js';
import { type GlobalOptions, formatBytes, printJson, safeText, writeOut } from '../output.js';

export const CHECK_EXIT_CODES: Record<CheckReport['status'], number> = { clean: 0, repaired: 1, damaged: 4 };

export interface CheckFlags {
  repair?: boolean;
  verifyBlobs?: boolean;
}

function line(f: Finding): string {
  const mark = f.repaired === true ? 'repaired' : f.repaired === false ? 'NOT repaired' : f.severity;
  return `${mark.padEnd(12)} ${f.kind.padEnd(24)} ${safeText(f.detail)}\n`;
}

export async function check(ctx: CommandContext, flags: CheckFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  // Crash leftovers are the point: open without the repairs every other verb does at open.
  const store = await requireStore(g, 'a store', { repairOnOpen: false });
  try {
    const r = await store.check({ repair: flags.repair, verifyBlobs: flags.verifyBlobs, signal: ctx.signal });
    process.exitCode = CHECK_EXIT_CODES[r.status];
    if (g.json) return printJson(r);
    for (const f of r.findings) if (f.severity !== 'reclaimable') writeOut(line(f));
    const reclaim = r.findings.filter((f) => f.severity === 'reclaimable');
    const locks = reclaim.filter((f) => f.kind === 'lock-stale');
    const faults = r.findings.length - reclaim.length;
    const verified = flags.verifyBlobs ? `, ${r.blobsVerified} blob(s) re-hashed` : '';
    const space = reclaim.length > locks.length ? `; ${formatBytes(r.reclaimableBytes)} reclaimable by gc (${reclaim.length - locks.length} item(s))` : '';
    const clutter = locks.length ? `; ${locks.length} stale lock file(s)${flags.repair ? ' removed' : ' (--repair removes them)'}` : '';
    writeOut(`${r.status}: ${faults} fault(s)${verified}${space}${clutter}\n`);
  } finally {
    await store.close();
  }
}
