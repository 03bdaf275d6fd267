/**
 * Certificates for the TLS registry and the token server, made with the
 * openssl command line (Node can parse X.509 but not issue it).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface TlsFiles {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A CA and a server certificate for 127.0.0.1, 127.0.0.2 (a second loopback "host") and localhost signed by it. */
export function makeTlsFiles(dir: string): TlsFiles {
  fs.mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tsgraph test CA',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr'], dir);
  fs.writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'ext.cnf', '-out', 'server.crt'], dir);
  return { caCert: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key') };
}

export interface SigningFiles {
  cert: string;
  key: string;
}

/** A self-signed RSA certificate the token server signs JWTs with. */
export function makeSigningCert(dir: string): SigningFiles {
  fs.mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tsgraph test token issuer',
    '-keyout', 'token.key', '-out', 'token.crt'], dir);
  return { cert: join(dir, 'token.crt'), key: join(dir, 'token.key') };
}
