/** `tsgraph history IMAGE`: an image's steps, newest first, like docker history (defined in ../program.ts). */
import type { Command } from '../commander.js';
import { requireStore } from '../context.js';
import { createdSince } from '../format-template.js';
import { type GlobalOptions, formatBytes, formatTable, printJson, writeOut } from '../output.js';

/** docker's width for CREATED BY without --no-trunc. */
const CREATED_BY_WIDTH = 45;

function truncate(s: string, width: number): string {
  return s.length > width ? `${s.slice(0, width - 1)}…` : s;
}

export async function history(ref: string, flags: { trunc?: boolean; quiet?: boolean }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const store = await requireStore(g, `image ${ref}`);
  const image = store.findImage(ref);
  const steps = await store.history(image.name);
  if (g.json) return printJson({ name: image.name, id: image.configDigest, history: steps });
  // As docker for a pulled image: the ID on the newest step, the steps below have no image of their own.
  const id = flags.trunc === false ? image.configDigest : image.configDigest.slice(7, 19);
  if (flags.quiet) return void writeOut(`${id}\n`);
  const rows = steps.map((s, i) => {
    // docker shows a step's command with its newlines and tabs as spaces.
    const by = (s.createdBy ?? '').replace(/[\t\n]+/g, ' ');
    const size = s.layer ? (s.layer.unpackedBytes ?? s.layer.compressedBytes) : 0;
    return [i === 0 ? id : '<missing>', createdSince(s.created), flags.trunc === false ? by : truncate(by, CREATED_BY_WIDTH), formatBytes(size), s.comment ?? ''];
  });
  writeOut(formatTable(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], rows));
}
