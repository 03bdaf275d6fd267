/**
 * Where a registry's credentials may go — the one decision every
 * Authorization header passes through (the transport attaches nothing
 * else). Credentials are the user's Basic user:password and the Bearer
 * tokens issued for the registry.
 *
 * The rule:
 *  - requests to the registry API (manifests, blobs, HEAD, uploads and their
 *    Locations, mounts, login's check) carry them only to the registry's own
 *    origin (scheme, host and port as pinged);
 *  - the token service (a Bearer challenge's realm) gets the Basic
 *    credentials when it is https (any host: docker.io's realm is
 *    auth.docker.io), or plain http on the registry's own host name/IP (any
 *    port) when the user allowed http for that registry (loopback or
 *    --insecure-registry);
 *  - a redirect never carries them to an origin other than the one the
 *    request was addressed to.
 *
 * docker and containerd send the registry's credentials to whatever realm
 * the challenge names (containerd's authorizer looks credentials up by the
 * registry host, then POSTs them to the realm as is). We keep talking to a
 * realm we do not trust — anonymously, as containerd does when it has no
 * credentials — so public pulls through such a registry still work, and a
 * private one fails with an error that says the credentials were withheld
 * and why, instead of leaking them in clear text to a third host.
 */

export interface CredentialScope {
  /** Origin of the registry API as pinged, e.g. `https://host:5000`. */
  origin: string;
  /** The registry's host name or IP, as URL.hostname writes it (no port). */
  hostname: string;
  /** True when plain http is allowed for this registry (loopback or --insecure-registry). */
  httpAllowed: boolean;
}

/** What the credentials would be used for. */
export type CredentialUse = 'registry' | 'token-realm';

/** An Authorization value with the scope that decides where it may be sent. */
export interface Grant {
  authorization: string;
  scope: CredentialScope;
  use: CredentialUse;
}

export function scopeOf(base: string, httpAllowed: boolean): CredentialScope {
  const u = new URL(base);
  return { origin: u.origin, hostname: u.hostname, httpAllowed };
}

/**
 * May credentials of `scope`, used for `use`, go to `target`? `addressed`
 * is the URL the caller asked for when `target` is a redirect hop (default:
 * target itself); a hop on another origin than the address never qualifies.
 */
export function mayReceiveCredentials(scope: CredentialScope, use: CredentialUse, target: URL, addressed: URL = target): boolean {
  if (target.origin !== addressed.origin) return false;
  if (use === 'registry') return target.origin === scope.origin;
  if (target.protocol === 'https:') return true;
  return target.protocol === 'http:' && scope.httpAllowed && target.hostname === scope.hostname;
}

/** Why `mayReceiveCredentials` said no for a token realm, in words for an error message. */
export function whyRealmUntrusted(scope: CredentialScope, realm: URL): string {
  if (realm.hostname !== scope.hostname) return `it is plain ${realm.protocol.replace(':', '')} on another host (${realm.host})`;
  return `it is plain http and http is not allowed for this registry`;
}
