/**
 * Where a verb writes a binary stream (`diff -o`, `save -o`, `export -o`): a
 * file, or stdout when the path is `-` or absent.
 *
 * Binary never goes to a terminal: without a file it goes to stdout only when
 * stdout is not a TTY, as docker refuses. A file is written under a temp name
 * next to it and renamed when complete (fsynced first): a failure leaves no
 * half-written file under the name asked for. Every failure is one tsgraph
 * error line, never a stack: a missing directory, a directory, no permission,
 * a full disk, a reader that closed the pipe early (EPIPE).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { NotFoundError, ResourceError, TsgraphError, UsageError } from '../errors.js';

/** Refuses a binary stream to a terminal (call it before any work starts). */
export function refuseTerminal(what: string): void {
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
export async function writeTo<T>(output: string | undefined, what: string, write: (out: NodeJS.WritableStream) => Promise<T>): Promise<T> {
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


/**
 * Copies `from` into `out` without ending it (writeTo ends and fsyncs a file;
 * stdout stays open), honouring backpressure; an error of either side (EPIPE)
 * destroys the source, which releases what it holds. Returns the bytes copied.
 */
export async function copyInto(from: Readable, out: NodeJS.WritableStream): Promise<number> {
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
