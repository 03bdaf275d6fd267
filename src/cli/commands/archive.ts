/**
 * `tsgraph save`, `load` and `export` (defined in ../program.ts): image
 * archives (docker-archive, oci-archive) and a container's flat tree tar.
 *
 * Binary never goes to a terminal: without -o (or with `-o -`) the archive
 * goes to stdout only when stdout is not a TTY, as docker refuses. A file is
 * written under a temp name next to it and renamed when complete: a failed
 * save or export leaves no half archive under the name asked for.
 */
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Command } from '../commander.js';
import { NotFoundError, UsageError } from '../../errors.js';
import type { ArchiveFormat } from '../../archive/load.js';
import { type CommandContext, openStore, requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';
import { copyInto, refuseTerminal, writeTo } from '../output-file.js';

export interface SaveFlags {
  output?: string;
  format: ArchiveFormat;
}

export interface LoadFlags {
  input?: string;
  quiet?: boolean;
  platform?: string;
}

export async function save(ctx: CommandContext, refs: string[], flags: SaveFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!flags.output || flags.output === '-') refuseTerminal('an image archive');
  const store = await requireStore(g, `image ${refs[0]}`);
  try {
    const { saveImages } = await import('../../archive/save.js');
    const result = await writeTo(flags.output, 'an image archive', (out) => saveImages(store, refs, out, { format: flags.format, signal: ctx.signal }));
    // The archive is the output on stdout; a report only when it went to a file.
    if (flags.output && flags.output !== '-') {
      if (g.json) printJson({ output: flags.output, ...result });
      else writeOut(`Saved ${result.images.map((i) => i.name).join(', ')} to ${flags.output} (${result.format})\n`);
    }
  } finally {
    await store.close();
  }
}

function openInput(path: string | undefined): Readable {
  if (!path || path === '-') {
    if (process.stdin.isTTY) throw new UsageError('TSG_USAGE', 'no archive to load: give -i FILE or pipe one to stdin');
    return process.stdin;
  }
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY);
    if (fs.fstatSync(fd).isDirectory()) {
      fs.closeSync(fd);
      throw Object.assign(new Error(''), { code: 'EISDIR' });
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError('TSG_NOT_FOUND', `archive ${path} does not exist`, { data: { path } });
    if (code === 'EISDIR') throw new UsageError('TSG_USAGE', `archive ${path} is a directory (pull oci:DIR for an OCI layout directory)`, { data: { path } });
    if (code === 'EACCES' || code === 'EPERM') throw new UsageError('TSG_USAGE', `cannot read archive ${path}: ${code}`, { data: { path } });
    throw err;
  }
  return fs.createReadStream('', { fd });
}

export async function load(ctx: CommandContext, flags: LoadFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const input = openInput(flags.input);
  const store = await openStore(g);
  try {
    const { loadArchive } = await import('../../archive/load.js');
    const result = await loadArchive(store, input, {
      signal: ctx.signal,
      platform: flags.platform,
      name: flags.input && flags.input !== '-' ? flags.input : undefined,
    });
    if (g.json) printJson({ format: result.format, images: result.images, seconds: Number(result.seconds.toFixed(3)) });
    else if (flags.quiet) writeOut(result.images.map((i) => `${i.name}\n`).join(''));
    else writeOut(result.images.map((i) => `Loaded image: ${i.name}\n`).join(''));
  } finally {
    input.destroy();
    await store.close();
  }
}

export async function exportContainer(ctx: CommandContext, name: string, flags: { output?: string }, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!flags.output || flags.output === '-') refuseTerminal('a tar archive');
  const store = await requireStore(g, `container ${name}`);
  try {
    const bytes = await writeTo(flags.output, 'a tar archive', async (out) => {
      const tar = await store.exportContainer(name, { signal: ctx.signal });
      return copyInto(tar, out);
    });
    if (flags.output && flags.output !== '-') {
      if (g.json) printJson({ container: name, output: flags.output, bytes });
      else writeOut(`Exported ${name} to ${flags.output}\n`);
    }
  } finally {
    await store.close();
  }
}
