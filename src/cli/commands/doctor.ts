/** `tsgraph doctor`: what this machine offers, with a remedy for each failure (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { runDoctor } from '../../drivers/doctor.js';
import { rootlessProbes } from '../../rootless/requirements.js';
import { storeRoot } from '../context.js';
import { mkdirBounded } from '../../util/private-root.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function doctor(cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const root = storeRoot(g); // a non-root user's is $XDG_DATA_HOME/tsgraph
  mkdirBounded(root); // the probes need the root's filesystem: created 0700 and bounded, nothing else left in it
  const probes = [...runDoctor(root), ...rootlessProbes()];
  if (g.json) return printJson({ root, probes });
  const width = Math.max(...probes.map((p) => p.name.length));
  for (const p of probes) {
    writeOut(`${p.ok ? 'PASS' : 'FAIL'}  ${p.name.padEnd(width)}  ${p.detail}\n`);
    if (p.remedy) writeOut(`      ${' '.repeat(width)}  remedy: ${p.remedy}\n`);
  }
}
