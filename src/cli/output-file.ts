/**
 * Where a verb writes a binary stream (`diff -o`, `export -o`, `save -o`):
 * a file, or stdout when the path is `-` or absent. Every failure is one
 * tsgraph error line, never a Node stack: an output path that cannot be
 * opened (missing directory, a directory, no permission), a reader that
 * closed the pipe early (EPIPE: `tsgraph diff -o - x | head`), a full disk.
 * A file left half-written by a failure is removed, so a later reader never
 * takes a truncated tar for a whole one. Binary is never written to a
 * terminal (it would scramble it), as docker refuses for `export`/`save`.
 */
import * as fs from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TsgraphError, UsageError, fromSystemError } from '../errors.js';

export interface WrittenOutput {
  /** The file written, or `-` for stdout. */
  path: string;
  bytes: number;
}

function errno(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The one-line error for a failed write of `what` to `path`. */
export function outputError(err: unknown, what: string, path: string): TsgraphError {
  if (err instanceof TsgraphError) return err;
  const full = fromSystemError(err);
  if (full) return full;
  const code = errno(err);
  if (code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED') {
    return new UsageError('TSG_USAGE', `${what}: the output was closed before the end (${code})`, { cause: err, data: { path, errno: code } });
  }
  const where = path === '-' ? 'stdout' : path;
  const why = code === 'ENOENT' ? 'no such directory' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error)?.message ?? String(err);
  return new UsageError('TSG_USAGE', `cannot write ${what} to ${where}: ${why}${code ? ` (${code})` : ''}`, { cause: err, data: { path, errno: code } });
}

/** Refuses a binary stream to a terminal (before any work starts). */
export function refuseTerminal(path: string | undefined, what: string, flag = '-o FILE'): void {
  if ((path === undefined || path === '-') && process.stdout.isTTY) {
    throw new UsageError('TSG_USAGE', `refusing to write ${what} (binary) to a terminal: use ${flag} or redirect stdout`);
  }
}

/**
 * Opens `path` for writing now (so a bad path fails before any work),
 * returning a function that pipes a stream into it.
 */
export function openOutput(path: string | undefined, what: string): (source: Readable) => Promise<WrittenOutput> {
  const target = path === undefined || path === '-' ? '-' : path;
  refuseTerminal(path, what);
  let fd: number | undefined;
  if (target !== '-') {
    try {
      // (libuv opens with O_CLOEXEC itself.)
      fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644);
    } catch (err) {
      throw outputError(err, what, target);
    }
  }
  return async (source) => {
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    const dest = fd === undefined ? process.stdout : fs.createWriteStream('', { fd, autoClose: true });
    try {
      await pipeline(source, count, dest);
    } catch (err) {
      if (fd !== undefined) fs.rmSync(target, { force: true });
      throw outputError(err, what, target);
    }
    return { path: target, bytes };
  };
}
