/**
 * Downloads one blob into the content store, resuming where a previous
 * attempt (in this process or a killed one) stopped. A dropped connection is
 * retried with `Range: bytes=<offset>-`; a source that ignores Range restarts
 * the ingest. Bytes are verified by the ingest writer; a mismatch stores
 * nothing and is not retried (the source is lying, not flaky).
 */
import type { ContentStore } from '../content/store.js';
import { IntegrityError, TsgraphError, isAbortError, BusyError, throwIfAborted, fromSystemError } from '../errors.js';
import type { Descriptor } from '../oci/schemas.js';
import { DEFAULT_RETRY, backoffDelay, isRetryableNetworkError, waitBeforeRetry } from '../registry/retry.js';
import type { ImageSource } from '../source/source.js';
import { crashPoint } from '../util/crash-point.js';

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

/** Attempts that make no progress before we give up. */
const MAX_STALLED_ATTEMPTS = DEFAULT_RETRY.attempts;
/** Hard cap on attempts, progress or not: keeps every loop bounded. */
const MAX_ATTEMPTS = 50;

export async function downloadBlob(
  source: ImageSource,
  content: ContentStore,
  desc: Descriptor,
  options: { signal?: AbortSignal | undefined; onStart?: (offset: number) => void; onProgress?: (p: DownloadProgress) => void } = {},
): Promise<DownloadResult> {
  if (content.has(desc.digest)) return { fetched: 0, resumedFrom: 0, existed: true };
  const writer = await content.writer(desc.digest, { digest: desc.digest, size: desc.size }, { signal: options.signal });
  let fetched = 0;
  const resumedFrom = writer.offset;
  try {
    // Another process may have finished it while we waited for the lock.
    if (content.has(desc.digest)) {
      writer.abort();
      return { fetched: 0, resumedFrom: 0, existed: true };
    }
    options.onStart?.(writer.offset);
    let stalled = 0;
    for (let attempt = 1; writer.offset < desc.size; attempt++) {
      throwIfAborted(options.signal);
      const before = writer.offset;
      try {
        const { start, body } = await source.blob(desc, writer.offset, options.signal);
        if (start !== writer.offset) writer.reset();
        for await (const chunk of body as AsyncIterable<Buffer>) {
          writer.write(chunk);
          crashPoint('pull:ingest-partial'); // tests: killed with some bytes in the ingest
          fetched += chunk.length;
          options.onProgress?.({ current: writer.offset, total: desc.size });
        }
        // The source ended cleanly: that is all it has. commit() judges it.
        break;
      } catch (err) {
        if (err instanceof IntegrityError || isAbortError(err)) throw err;
        if (err instanceof TsgraphError && !(err as { temporary?: boolean }).temporary && !isRetryableNetworkError(err.cause)) throw err;
        if (!(err instanceof TsgraphError) && !isRetryableNetworkError(err)) throw err;
        stalled = writer.offset > before ? 0 : stalled + 1;
        if (stalled >= MAX_STALLED_ATTEMPTS || attempt >= MAX_ATTEMPTS) throw err;
        await waitBeforeRetry(backoffDelay(DEFAULT_RETRY, Math.max(1, stalled)), options.signal);
      }
    }
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
    if (isAbortError(err)) throw new BusyError('TSG_ABORTED', 'pull aborted', { cause: err });
    throw err;
  }
}
