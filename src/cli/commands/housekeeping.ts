/** `tsgraph rm`, `rmi`, `gc`: removing containers, image names, and what nothing references (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { BusyError, EXIT_CODES, type TsgraphError, toTsgraphError } from '../../errors.js';
import { resolveImage } from '../../store/find-image.js';
import { openExistingStore, requireStore } from '../context.js';
import { type GlobalOptions, formatBytes, printJson, reportError, writeOut, writeErr } from '../output.js';

/**
 * Runs `one` for each name, going on past failures (as docker rm/rmi): each
 * failure is reported on its own line (or in `--json`'s `errors`), and the
 * exit code is the first failure's. A single name fails as any verb does.
 */
async function each(names: string[], g: GlobalOptions, one: (name: string) => Promise<string[]>, done: (removed: string[]) => string): Promise<void> {
  if (names.length === 1) {
    const removed = await one(names[0]!);
    return g.json ? printJson({ removed }) : writeOut(done(removed));
  }
  const removed: string[] = [];
  const errors: Array<{ name: string; error: ReturnType<TsgraphError['toJSON']> }> = [];
  let exit = 0;
  for (const n of names) {
    try {
      const r = await one(n);
      removed.push(...r);
      if (!g.json) writeOut(done(r));
    } catch (err) {
      const e = toTsgraphError(err);
      if (e.code === 'TSG_ABORTED') throw e; // a signal stops the loop
      errors.push({ name: n, error: e.toJSON() });
      // One line each, as every error prints (reportError), then on to the next name.
      const code = g.json ? exitCodeOf(e) : reportError(e, g);
      if (!exit) exit = code;
    }
  }
  if (g.json) printJson(errors.length ? { removed, errors } : { removed });
  if (exit) process.exitCode = exit;
}

function exitCodeOf(e: TsgraphError): number {
  return EXIT_CODES[e.category] ?? 1;
}

export async function rm(names: string[], _flags: { force?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `container ${names[0]}`);
  // Mounted or not, rm unmounts (every reference) and removes, as buildah and podman do for a container that runs
  // nothing; -f is accepted for docker habits. A mount something is using is refused either way (TSG_IN_USE).
  await each(names, g, async (n) => [(await store.removeContainer(n)).name], (r) => r.map((n) => `${n}\n`).join(''));
}

export async function rmi(refs: string[], flags: { force?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `image ${refs[0]}`);
  await each(
    refs,
    g,
    async (ref) => {
      const match = resolveImage(store.images, ref);
      // An ID of content with several names is all of them, as docker: refused unless -f, which removes every name.
      if (match.byId && match.names.length > 1) {
        const names = match.names.map((i) => i.name);
        if (!flags.force) {
          throw new BusyError('TSG_IN_USE', `image ${ref} is referenced by ${names.length} names (${names.join(', ')}): rmi a name, or rmi -f ${ref} to remove them all`, {
            data: { ref, names },
          });
        }
        const removed: string[] = [];
        for (const name of names) {
          try {
            removed.push((await store.removeImage(name, { force: true })).name);
          } catch (err) {
            if (toTsgraphError(err).code !== 'TSG_NOT_FOUND') throw err; // removed meanwhile: gone either way
          }
        }
        return removed;
      }
      return [(await store.removeImage(match.byId ? match.image.name : ref, { force: flags.force })).name];
    },
    (r) => r.map((n) => `Untagged: ${n}\n`).join(''),
  );
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
