/**
 * Downloads one blob into the content store, resuming where a previous
 * attempt (in this process or a killed one) stopped. A dropped connection is
 * retried with `Range: bytes=<offset>-`; a source that ignores Range restarts
 * the ingest. Bytes are verified by the ingest writer; a mismatch stores
 * nothing and is not retried (the source is lying, not flaky).
 *
 * With a BlobTee, every byte of the blob, from byte 0, also goes to
 * `tee.stream` as it arrives (the layer's unpack reads it): first what an
 * earlier attempt left in the ingest, then the body; a blob already stored is
 * read from the store. The download waits for the tee to drain, so a slow
 * unpack slows the download (no unbounded buffering). A source that restarts
 * from byte 0 after the tee saw bytes cuts the tee (`tee.restarted`); the
 * blob itself still completes into the store.
 */
import type { ContentStore, IngestWriter } from '../content/store.js';
import { IntegrityError, TsgraphError, isAbortError, InterruptedError, throwIfAborted, fromSystemError } from '../errors.js';
import type { Descriptor } from '../oci/schemas.js';
import { DEFAULT_RETRY, backoffDelay, isRetryableNetworkError, waitBeforeRetry } from '../registry/retry.js';
import type { ImageSource } from '../source/source.js';
import { crashPoint } from '../util/crash-point.js';
import type { BlobTee } from './blob-tee.js';

export interface DownloadProgress {
  /** Bytes on disk for this blob so far (resumed bytes included). */
  current: number;
  total: number;
}

export interface DownloadResult {
  /** Bytes transferred in this call (0 when the blob was already stored). */
  fetched: number;
  /** Bytes found from an earlier interrupted attempt. */
  resumedFrom: number;
  /** True when the blob was already in the store. */
  existed: boolean;
}

export interface DownloadOptions {
  signal?: AbortSignal | undefined;
  onStart?: (offset: number) => void;
  onProgress?: (p: DownloadProgress) => void;
  /** Also feed the blob's bytes, from byte 0, to this tee (a layer's unpack). */
  tee?: BlobTee | undefined;
}

/** Attempts that make no progress before we give up. */
const MAX_STALLED_ATTEMPTS = DEFAULT_RETRY.attempts;
/** Hard cap on attempts, progress or not: keeps every loop bounded. */
const MAX_ATTEMPTS = 50;

export async function downloadBlob(source: ImageSource, content: ContentStore, desc: Descriptor, options: DownloadOptions = {}): Promise<DownloadResult> {
  const { tee } = options;
  try {
    if (content.has(desc.digest)) return await fromStore(content, desc, options);
    const writer = await content.writer(desc.digest, { digest: desc.digest, size: desc.size }, { signal: options.signal });
    return await fill(source, content, desc, writer, options);
  } catch (err) {
    tee?.fail(err); // the unpack stops too
    throw err;
  }
}

async function fromStore(content: ContentStore, desc: Descriptor, options: DownloadOptions): Promise<DownloadResult> {
  if (options.tee) {
    await options.tee.feed(content.reader(desc.digest), options.signal);
    options.tee.end();
  }
  return { fetched: 0, resumedFrom: 0, existed: true };
}

async function fill(source: ImageSource, content: ContentStore, desc: Descriptor, writer: IngestWriter, options: DownloadOptions): Promise<DownloadResult> {
  const { tee, signal } = options;
  let fetched = 0;
  const resumedFrom = writer.offset;
  try {
    // Another process may have finished it while we waited for the lock.
    if (content.has(desc.digest)) {
      writer.abort();
      return await fromStore(content, desc, options);
    }
    options.onStart?.(writer.offset);
    // What an earlier attempt left is the blob's start: the unpack reads it from the ingest, not the network.
    if (tee && writer.offset > 0) await tee.feed(writer.readWritten(), signal);
    let stalled = 0;
    for (let attempt = 1; writer.offset < desc.size; attempt++) {
      throwIfAborted(signal);
      const before = writer.offset;
      try {
        const { start, body } = await source.blob(desc, writer.offset, signal);
        if (start !== writer.offset) {
          writer.reset();
          tee?.restart(); // the unpack saw bytes that are dropped now: it starts over from the stored blob
        }
        for await (const chunk of body as AsyncIterable<Buffer>) {
          writer.write(chunk); // counted, hashed and on disk before the unpack sees it
          crashPoint('pull:ingest-partial'); // tests: killed with some bytes in the ingest
          fetched += chunk.length;
          options.onProgress?.({ current: writer.offset, total: desc.size });
          if (tee) await tee.push(chunk, signal);
        }
        // The source ended cleanly: that is all it has. commit() judges it.
        break;
      } catch (err) {
        if (err instanceof IntegrityError || isAbortError(err)) throw err;
        if (err instanceof TsgraphError && !(err as { temporary?: boolean }).temporary && !isRetryableNetworkError(err.cause)) throw err;
        if (!(err instanceof TsgraphError) && !isRetryableNetworkError(err)) throw err;
        stalled = writer.offset > before ? 0 : stalled + 1;
        if (stalled >= MAX_STALLED_ATTEMPTS || attempt >= MAX_ATTEMPTS) throw err;
        await waitBeforeRetry(backoffDelay(DEFAULT_RETRY, Math.max(1, stalled)), signal);
      }
    }
    // The tar can finish while the blob is fsynced; its layer completes only once both did.
    tee?.end();
    writer.commit();
    crashPoint('pull:blob-committed');
    return { fetched, resumedFrom, existed: false };
  } catch (err) {
    // Keep partial bytes for the next attempt; commit()/write() already
    // removed them when the content itself was wrong. A full disk is the
    // exception: the partial blob is what fills it, and `gc` (which the error
    // tells the user to run) must be able to give that space back.
    const full = fromSystemError(err);
    if (full) {
      writer.abort();
      throw full;
    }
    writer.close();
    if (isAbortError(err)) throw new InterruptedError('TSG_ABORTED', 'pull aborted', { cause: err });
    throw err;
  }
}
