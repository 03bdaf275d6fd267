/**
 * Turns a registry's non-2xx answer into a TsgraphError with the HTTP status,
 * the spec's error codes (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, …) and whether
 * trying again may help.
 */
import type { Response } from 'node-fetch';
import { AuthError, NotFoundError, RegistryError, type TsgraphError } from '../errors.js';

export interface RegistryErrorBody {
  errors?: Array<{ code?: string; message?: string; detail?: unknown }>;
}

/** What was being asked for, to make the message say it. */
export interface RequestContext {
  host: string;
  repository: string;
  /** `manifest`, `blob`, `upload`, `tags` … */
  kind: string;
  /** Tag or digest. */
  target?: string | undefined;
}

/**
 * Reads at most `limit` bytes of a body and drops the rest (a hostile server
 * may send gigabytes). A broken body reads as what arrived, unless `strict`
 * (then the read error, e.g. TSG_TIMEOUT, is thrown).
 */
export async function readCapped(res: Response, limit: number, strict = false): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  let capped = false;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      const room = limit - total;
      chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      total += Math.min(chunk.length, room);
      if (total >= limit) {
        capped = true;
        break;
      }
    }
  } catch (err) {
    /* a broken error body is no worse than an empty one */
    if (strict) throw err;
  }
  // Past the cap, drop the connection rather than read the rest.
  if (capped) (res.body as unknown as { destroy?: () => void })?.destroy?.();
  return Buffer.concat(chunks);
}

async function readErrorBody(res: Response): Promise<RegistryErrorBody> {
  try {
    const text = (await readCapped(res, 64 * 1024)).toString('utf8');
    return text ? (JSON.parse(text) as RegistryErrorBody) : {};
  } catch {
    return {};
  }
}

export async function registryHttpError(res: Response, ctx: RequestContext): Promise<TsgraphError> {
  const body = await readErrorBody(res);
  const codes = (body.errors ?? []).map((e) => e.code ?? '').filter(Boolean);
  const detail = body.errors?.[0]?.message;
  const data = { status: res.status, registryCodes: codes, host: ctx.host, repository: ctx.repository, target: ctx.target };
  const where = `${ctx.host}/${ctx.repository}`;
  if (res.status === 404 || codes.includes('MANIFEST_UNKNOWN') || codes.includes('NAME_UNKNOWN') || codes.includes('BLOB_UNKNOWN')) {
    if (codes.includes('NAME_UNKNOWN')) {
      return new NotFoundError('TSG_REPO_NOT_FOUND', `repository ${where} not found`, { data });
    }
    if (ctx.kind === 'manifest' && (codes.includes('MANIFEST_UNKNOWN') || codes.length === 0)) {
      const what = ctx.target?.startsWith('sha256:') ? `manifest ${ctx.target}` : `tag ${ctx.target}`;
      return new NotFoundError('TSG_TAG_NOT_FOUND', `${what} not found in ${where}`, { data });
    }
    if (ctx.kind === 'blob' || codes.includes('BLOB_UNKNOWN')) {
      return new NotFoundError('TSG_BLOB_NOT_FOUND', `blob ${ctx.target} not found in ${where}`, { data });
    }
    return new NotFoundError('TSG_NOT_FOUND', `${ctx.kind} ${ctx.target ?? ''} not found in ${where}`.replace(/\s+/g, ' '), { data });
  }
  if (res.status === 401 || res.status === 403 || codes.includes('DENIED') || codes.includes('UNAUTHORIZED')) {
    return new AuthError('TSG_DENIED', `access to ${where} denied${detail ? `: ${detail}` : ''}`, { data });
  }
  if (res.status === 429) {
    return new RegistryError('TSG_TOO_MANY_REQUESTS', `registry ${ctx.host} is throttling requests (HTTP 429), gave up after retries`, {
      status: res.status,
      registryCodes: codes,
      temporary: true,
      data,
    });
  }
  return new RegistryError('TSG_REGISTRY', `registry ${ctx.host} answered HTTP ${res.status} for ${ctx.kind} ${ctx.target ?? ''}${detail ? `: ${detail}` : ''}`.trim(), {
    status: res.status,
    registryCodes: codes,
    temporary: res.status >= 500,
    data,
  });
}
