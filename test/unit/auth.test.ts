import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChallenges } from '../../src/registry/auth.js';
import { normalizeAuthKey, parseCreds } from '../../src/registry/credentials.js';
import { backoffDelay, DEFAULT_RETRY, parseRetryAfter } from '../../src/registry/retry.js';

describe('WWW-Authenticate parsing', () => {
  it('reads a Bearer challenge with quoted params', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"');
    assert.deepEqual(c, {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
    });
  });
  it('reads several challenges and unquoted values', () => {
    const cs = parseChallenges('Basic realm=reg, Bearer realm="http://x/token",error="insufficient_scope"');
    assert.deepEqual(cs.map((c) => c.scheme), ['basic', 'bearer']);
    assert.equal(cs[0]!.params.realm, 'reg');
    assert.equal(cs[1]!.params.error, 'insufficient_scope');
  });
  it('keeps commas and escaped quotes inside quoted values', () => {
    const [c] = parseChallenges('Bearer realm="http://x/t",scope="repository:a:pull,push",x="q\\"uote"');
    assert.equal(c!.params.scope, 'repository:a:pull,push');
    assert.equal(c!.params.x, 'q"uote');
  });
  it('returns nothing for an empty or absent header', () => {
    assert.deepEqual(parseChallenges(''), []);
    assert.deepEqual(parseChallenges(null), []);
  });
});

describe('credentials', () => {
  it('splits user:password at the first colon', () => {
    assert.deepEqual(parseCreds('u:p:q'), { username: 'u', password: 'p:q' });
    assert.throws(() => parseCreds('nocolon'), /USER:PASSWORD/);
  });
  it('normalises docker config keys', () => {
    assert.equal(normalizeAuthKey('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(normalizeAuthKey('https://host:5000/v2/'), 'host:5000');
    assert.equal(normalizeAuthKey('host:5000'), 'host:5000');
  });
});

describe('retry policy', () => {
  it('parses Retry-After seconds and HTTP dates', () => {
    assert.equal(parseRetryAfter('2'), 2000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(null), undefined);
  });
  it('caps backoff and Retry-After', () => {
    for (let i = 1; i < 20; i++) assert.ok(backoffDelay(DEFAULT_RETRY, i) <= DEFAULT_RETRY.maxDelayMs * 1.2);
    assert.equal(backoffDelay(DEFAULT_RETRY, 1, 10 * 60_000), DEFAULT_RETRY.maxRetryAfterMs);
    assert.equal(backoffDelay(DEFAULT_RETRY, 1, 2000), 2000);
  });
});
