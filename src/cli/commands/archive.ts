/**
 * `tsgraph save`, `load` and `export` (defined in ../program.ts): image
 * archives (docker-archive, oci-archive) and a container's flat tree tar.
 *
 * Binary never goes to a terminal: without -o (or with `-o -`) the archive
 * goes to stdout only when stdout is not a TTY, as docker refuses. A file is
 * written under a temp name next to it and renamed when complete: a failed
 * save or export leaves no half archive under the name asked for.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Command } from '../commander.js';
import { NotFoundError, ResourceError, TsgraphError, UsageError } from '../../errors.js';
import type { ArchiveFormat } from '../../archive/load.js';
import { type CommandContext, openStore, requireStore } from '../context.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export interface SaveFlags {
  output?: string;
  format: ArchiveFormat;
}

export interface LoadFlags {
  input?: string;
  quiet?: boolean;
  platform?: string;
}

function refuseTerminal(what: string): void {
  if (process.stdout.isTTY) {
    throw new UsageError('TSG_USAGE', `refusing to write ${what} to a terminal: give -o FILE or redirect stdout`);
  }
}

/** A file to write under a temp name, renamed into place by done(). */
function outputFile(path: string): { stream: fs.WriteStream; done: () => void; drop: () => void } {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(4).toString('hex')}`);
  let fd: number;
  try {
    if (fs.statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw Object.assign(new Error(''), { code: 'EISDIR' });
    fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    throw fileError(err, path);
  }
  const stream = fs.createWriteStream('', { fd, autoClose: false });
  let closed = false;
  const close = () => {
    if (!closed) fs.closeSync(fd);
    closed = true;
  };
  return {
    stream,
    done: () => {
      fs.fsyncSync(fd);
      close();
      fs.renameSync(tmp, path);
    },
    drop: () => {
      // destroy() closes the fd itself (pending writes then fail quietly).
      stream.on('error', () => {});
      if (!closed) stream.destroy();
      closed = true;
      fs.rmSync(tmp, { force: true });
    },
  };
}

/** One-line errors for the output file (missing dir, a directory, no permission, full disk, EPIPE). */
function fileError(err: unknown, path: string): unknown {
  if (err instanceof TsgraphError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new ResourceError('TSG_NO_SPACE', `cannot write ${path}: no space left on the device${code === 'EDQUOT' ? ' (disk quota)' : ''}`, { cause: err, data: { path, errno: code } });
  }
  if (code === 'ENOENT') return new NotFoundError('TSG_NOT_FOUND', `cannot write ${path}: its directory does not exist`, { data: { path } });
  if (code === 'EISDIR') return new UsageError('TSG_USAGE', `cannot write ${path}: it is a directory`, { data: { path } });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new UsageError('TSG_USAGE', `cannot write ${path}: ${code}`, { data: { path, errno: code } });
  if (code === 'EPIPE') return new UsageError('TSG_USAGE', `cannot write ${path}: the reader closed the pipe`, { data: { path, errno: code } });
  return err;
}

/** Runs `write` into -o FILE (temp + rename) or stdout; returns what it returned. */
async function writeTo<T>(output: string | undefined, what: string, write: (out: NodeJS.WritableStream) => Promise<T>): Promise<T> {
  if (!output || output === '-') {
    refuseTerminal(what);
    try {
      return await write(process.stdout);
    } catch (err) {
      throw fileError(err, 'stdout');
    }
  }
  const file = outputFile(output);
  try {
    const result = await write(file.stream);
    await new Promise<void>((resolve, reject) => {
      file.stream.once('error', reject);
      file.stream.end(() => resolve());
    });
    file.done();
    return result;
  } catch (err) {
    file.drop();
    throw fileError(err, output);
  }
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

/**
 * Copies `from` into `out` without ending it (writeTo ends and fsyncs a file;
 * stdout stays open), honouring backpressure; an error of either side (EPIPE)
 * destroys the source, which releases what it holds. Returns the bytes copied.
 */
async function copyInto(from: Readable, out: NodeJS.WritableStream): Promise<number> {
  let n = 0;
  let failed: ((err: Error) => void) | undefined;
  const outError = new Promise<never>((_r, reject) => (failed = reject));
  outError.catch(() => {});
  out.once('error', failed!);
  try {
    for await (const chunk of from as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (!out.write(chunk)) await Promise.race([new Promise((r) => out.once('drain', r)), outError]);
    }
    return n;
  } catch (err) {
    from.destroy();
    throw err;
  } finally {
    out.off('error', failed!);
  }
}
