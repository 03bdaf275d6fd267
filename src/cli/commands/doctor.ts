/** `tsgraph doctor`: what this machine offers, with a remedy for each failure (defined in ../program.ts). */
import { resolve } from 'node:path';
import type { Command } from '../commander.js';
import { runDoctor } from '../../drivers/doctor.js';
import { DEFAULT_ROOT } from '../../store/store.js';
import { mkdirBounded } from '../../util/private-root.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export async function doctor(cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const root = resolve(g.root ?? process.env.TSGRAPH_ROOT ?? DEFAULT_ROOT);
  mkdirBounded(root); // the probes need the root's filesystem: created 0700 and bounded, nothing else left in it
  const probes = runDoctor(root);
  if (g.json) return printJson({ root, probes });
  const width = Math.max(...probes.map((p) => p.name.length));
  for (const p of probes) {
    writeOut(`${p.ok ? 'PASS' : 'FAIL'}  ${p.name.padEnd(width)}  ${p.detail}\n`);
    if (p.remedy) writeOut(`      ${' '.repeat(width)}  remedy: ${p.remedy}\n`);
  }
}
