/**
 * A small token server for distribution's `auth.token` config: issues RS256
 * JWTs whose header carries the signing certificate in `x5c`, which the
 * registry verifies against its `rootcertbundle`.
 *
 * Policy: with the right Basic credentials every requested action is granted;
 * anonymous callers get `pull` on repositories under `public/` only; wrong
 * credentials get 401.
 */
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** Requests seen: scope strings and whether credentials came with them. */
  requests: Array<{ scopes: string[]; user: string | undefined }>;
  /** The Authorization header of every request, as received (undefined when none), wrong ones included. */
  authorizations: Array<string | undefined>;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export async function startTokenServer(opts: {
  certPath: string;
  keyPath: string;
  users: Record<string, string>;
  expiresIn?: number;
}): Promise<TokenServer> {
  const service = 'tsgraph-test-registry';
  const issuer = 'tsgraph-test-issuer';
  const key = createPrivateKey(fs.readFileSync(opts.keyPath));
  const certDer = new X509Certificate(fs.readFileSync(opts.certPath)).raw;
  const requests: TokenServer['requests'] = [];
  const authorizations: TokenServer['authorizations'] = [];

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let user: string | undefined;
    const auth = req.headers.authorization;
    authorizations.push(auth);
    if (auth?.startsWith('Basic ')) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (opts.users[u!] !== rest.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
        return;
      }
      user = u;
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push({ scopes, user });
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = [s.split(':')[0], s.split(':').slice(1, -1).join(':'), s.split(':').at(-1)];
      if (type !== 'repository' || !name || !actions) return [];
      const wanted = actions.split(',');
      const granted = user ? wanted : name.startsWith('public/') ? wanted.filter((a) => a === 'pull') : [];
      return granted.length ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = opts.expiresIn ?? 300;
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = { iss: issuer, sub: user ?? '', aud: url.searchParams.get('service') ?? service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('RSA-SHA256', Buffer.from(signingInput), key);
    const token = `${signingInput}.${b64url(signature)}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    requests,
    authorizations,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
