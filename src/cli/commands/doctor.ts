/** `tsgraph doctor`: what this machine offers, with a remedy for each failure. */
import { resolve } from 'node:path';
import { Command } from '../commander.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export function doctorCommand(): Command {
  return new Command('doctor')
    .summary('check the kernel, filesystem and tools the drivers need')
    .description(
      'Probe the kernel (version, overlay, new mount API, max lowers, metacopy/redirect_dir/index), the root\'s ' +
        'filesystem (type, d_type, whiteout mknod, userxattr, reflink), btrfs, aufs and runc. Prints PASS/FAIL with a ' +
        'remedy for each failure; exits 0 (a failed probe is information, not an error).',
    )
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const [{ runDoctor }, { DEFAULT_ROOT }, { mkdirBounded }] = await Promise.all([
        import('../../drivers/doctor.js'),
        import('../../store/store.js'),
        import('../../util/private-root.js'),
      ]);
      const root = resolve(g.root ?? process.env.TSGRAPH_ROOT ?? DEFAULT_ROOT);
      mkdirBounded(root); // the probes need the root's filesystem: created 0700 and bounded, nothing else left in it
      const probes = runDoctor(root);
      if (g.json) return printJson({ root, probes });
      const width = Math.max(...probes.map((p) => p.name.length));
      for (const p of probes) {
        writeOut(`${p.ok ? 'PASS' : 'FAIL'}  ${p.name.padEnd(width)}  ${p.detail}\n`);
        if (p.remedy) writeOut(`      ${' '.repeat(width)}  remedy: ${p.remedy}\n`);
      }
    });
}
