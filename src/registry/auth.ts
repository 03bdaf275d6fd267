/**
 * Registry authentication (distribution's token spec):
 *  - a 401 carries `WWW-Authenticate: Bearer realm=…,service=…,scope=…` or `Basic realm=…`;
 *  - Bearer: GET realm?service=…&scope=… (with Basic credentials when we have
 *    them and credential-scope.ts trusts the realm with them, anonymously
 *    otherwise) returns `{token|access_token, expires_in}`;
 *  - tokens are cached per registry+realm+service+scope+user until `expires_in` runs out.
 */
import { LRUCache } from 'lru-cache';
import { AuthError, RegistryError } from '../errors.js';
import { basicAuthHeader, type Credentials } from './credentials.js';
import type { Transport } from './transport.js';
import { type CredentialScope, mayReceiveCredentials, whyRealmUntrusted } from './credential-scope.js';
import { readCapped } from './http-errors.js';
import { retryBodyRead } from './retry.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header (one or more challenges, quoted params). */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  if (!header) return [];
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skip = (chars: string) => {
    while (i < n && chars.includes(header[i]!)) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  // Bounded: every pass consumes at least one character or stops.
  while (i < n) {
    skip(' \t,');
    const start = i;
    const word = token();
    if (!word) break;
    skip(' \t');
    if (header[i] === '=' && current) {
      i++;
      skip(' \t');
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        const vs = i;
        while (i < n && header[i] !== ',' && header[i] !== ' ') i++;
        value = header.slice(vs, i);
      }
      current.params[word.toLowerCase()] = value;
    } else {
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
    }
    if (i === start) break;
  }
  return out;
}

interface TokenResponse {
  token?: string;
  access_token?: string;
  expires_in?: number;
}

/** What to send for a challenge, and whether credentials were kept back from an untrusted realm. */
export interface AuthAnswer {
  authorization: string | undefined;
  /** Set when we had credentials but the token realm may not receive them: why, for error messages. */
  withheld?: string | undefined;
}

export class Authenticator {
  #tokens = new LRUCache<string, string>({ max: 256, ttlAutopurge: false });

  constructor(private readonly transport: Transport) {}

  /**
   * The Authorization value for a request to the registry of `scope` under
   * `challenge` (undefined when the scheme needs credentials we do not
   * have). Where that value may then go is the transport's grant check.
   */
  async header(
    challenge: Challenge,
    scopes: string[],
    creds: Credentials | undefined,
    scope: CredentialScope,
    signal?: AbortSignal,
  ): Promise<AuthAnswer> {
    if (challenge.scheme === 'basic') return { authorization: creds ? basicAuthHeader(creds) : undefined };
    if (challenge.scheme !== 'bearer') return { authorization: undefined };
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError('TSG_REGISTRY', 'registry sent a Bearer challenge without a realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err) {
      throw new RegistryError('TSG_REGISTRY', `registry sent a Bearer realm that is not a URL: ${JSON.stringify(realm.slice(0, 200))}`, { cause: err });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryError('TSG_REGISTRY', `registry sent a Bearer realm that is not http(s): ${url.protocol}`);
    }
    // The user's password goes to the token service only if it is trusted
    // with it; otherwise we ask for an anonymous token (see credential-scope.ts).
    const trusted = mayReceiveCredentials(scope, 'token-realm', url);
    const sent = trusted ? creds : undefined;
    const withheld = creds && !trusted ? `credentials for ${new URL(scope.origin).host} were not sent to the token service at ${url.host}: ${whyRealmUntrusted(scope, url)}` : undefined;
    const service = challenge.params.service ?? '';
    const allScopes = [...new Set([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])])].sort();
    // Per registry too: a token bought for one registry must never be handed to
    // another one whose challenge names the same realm, service and scope.
    const key = [scope.origin, realm, service, allScopes.join(' '), sent?.username ?? ''].join('\n');
    const cached = this.#tokens.get(key);
    if (cached) return { authorization: `Bearer ${cached}`, withheld };

    if (service) url.searchParams.set('service', service);
    for (const s of allScopes) url.searchParams.append('scope', s);
    const request = () =>
      this.transport.send(url.href, {
        headers: { accept: 'application/json' },
        grant: sent ? { authorization: basicAuthHeader(sent), scope, use: 'token-realm' } : undefined,
        signal,
      });
    const body = await retryBodyRead(this.transport.retry, signal, request, async (res): Promise<TokenResponse> => {
      if (res.status === 401 || res.status === 403) {
        res.body?.resume();
        throw new AuthError(
          // Withheld credentials were never tried, so they are not "wrong".
          withheld ? 'TSG_AUTH_REQUIRED' : 'TSG_AUTH_FAILED',
          sent
            ? `authentication failed for user ${sent.username} at ${url.host}: wrong username or password`
            : withheld
              ? `the token service at ${url.host} refused anonymous access, and ${withheld}`
              : `the token service at ${url.host} refused anonymous access; log in or pass --creds`,
          { data: { realm, status: res.status, withheld: withheld !== undefined } },
        );
      }
      if (!res.ok) {
        res.body?.resume();
        throw new RegistryError('TSG_REGISTRY', `token service ${url.host} answered HTTP ${res.status}`, {
          status: res.status,
          temporary: res.status >= 500,
        });
      }
      const raw = await readCapped(res, 1 << 20, true);
      try {
        return JSON.parse(raw.toString('utf8')) as TokenResponse;
      } catch (err) {
        throw new RegistryError('TSG_REGISTRY', `token service ${url.host} sent a body that is not JSON`, { cause: err });
      }
    });
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError('TSG_REGISTRY', `token service ${url.host} sent no token`);
    // The spec's minimum lifetime is 60 s; keep a margin so a token never expires in flight.
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    this.#tokens.set(key, token, { ttl: Math.max(1, seconds - 10) * 1000 });
    return { authorization: `Bearer ${token}`, withheld };
  }

  /** Forgets cached tokens (after a 401 with a token we thought valid). */
  forget(): void {
    this.#tokens.clear();
  }
}
