/**
 * The Go-template subset of `--format` / `inspect -f` (src/cli/format-template.ts):
 * what docker users type renders as docker renders it, and every mistake is
 * a TSG_USAGE error rather than an empty value and exit 0.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createdAt, createdSince, globMatcher, humanDuration, parseTemplate, renderRows, show, splitName } from '../../src/cli/format-template.js';
import { formatTable } from '../../src/cli/output.js';

const data = {
  Id: 'sha256:abc',
  Size: 1234,
  Config: { Env: ['A=1', 'B=2'], Cmd: ['sh'], Labels: { 'a.b': 'c d', x: 'y' }, Empty: null },
  RepoTags: ['r:1'],
};

const usage = (fn: () => unknown, message: RegExp) => assert.throws(fn, (e: Error & { code?: string }) => e.code === 'TSG_USAGE' && message.test(e.message));

describe('format templates', () => {
  it('fields, nested paths, Go value printing', () => {
    assert.equal(parseTemplate('{{.Id}}').render(data), 'sha256:abc');
    assert.equal(parseTemplate('{{.Config.Env}}').render(data), '[A=1 B=2]');
    assert.equal(parseTemplate('{{.Config.Labels}}').render(data), 'map[a.b:c d x:y]');
    assert.equal(parseTemplate('{{.Size}} {{.Config.Empty}}').render(data), '1234 <nil>');
    assert.equal(parseTemplate('id={{ .Id }}!').render(data), 'id=sha256:abc!');
  });

  it('index, json, join, len, upper', () => {
    assert.equal(parseTemplate('{{index .Config.Labels "a.b"}}').render(data), 'c d');
    assert.equal(parseTemplate('{{index .Config.Labels "missing"}}').render(data), '<no value>');
    assert.equal(parseTemplate('{{index .Config.Env 1}}').render(data), 'B=2');
    assert.deepEqual(JSON.parse(parseTemplate('{{json .Config}}').render(data)), data.Config);
    assert.deepEqual(JSON.parse(parseTemplate('{{json .}}').render(data)), data);
    assert.equal(parseTemplate('{{join .Config.Env ","}}').render(data), 'A=1,B=2');
    assert.equal(parseTemplate('{{len .Config.Env}} {{upper .Id}}').render(data), '2 SHA256:ABC');
    assert.equal(parseTemplate('{{json (index .Config.Labels "x")}}').render(data), '"y"');
    usage(() => parseTemplate('{{index .Config.Env 5}}').render(data), /out of range/);
  });

  it('an unknown field is an error naming it (not an empty value)', () => {
    usage(() => parseTemplate('{{.Nope}}').render(data), /unknown field \.Nope/);
    usage(() => parseTemplate('{{.Config.Nope}}').render(data), /unknown field \.Config\.Nope .*\.Env/);
    usage(() => parseTemplate('{{.Id.Deeper}}').render(data), /not an object/);
    usage(() => parseTemplate('{{.Repository}} {{.Nope}}').checkFields(['Repository']), /unknown field \.Nope/);
    assert.doesNotThrow(() => parseTemplate('{{json .}} {{.Repository}}').checkFields(['Repository']));
  });

  it('malformed and unsupported templates are TSG_USAGE', () => {
    usage(() => parseTemplate('{{.Id'), /unclosed/);
    usage(() => parseTemplate('{{}}'), /empty/);
    usage(() => parseTemplate('{{range .RepoTags}}{{.}}{{end}}'), /not supported/);
    usage(() => parseTemplate('{{.Id | upper}}'), /pipelines/);
    usage(() => parseTemplate('{{nosuch .Id}}'), /not defined/);
    usage(() => parseTemplate('{{json}}'), /missing value|wrong number/);
    usage(() => parseTemplate('{{index .X "a}}'), /unterminated/);
    usage(() => parseTemplate('{{.Id .Size}}'), /cannot take arguments/);
  });

  it('trim markers, \\t and \\n typed literally, comments', () => {
    assert.equal(parseTemplate('a  {{- .Id -}}  b').render(data), 'asha256:abcb');
    assert.equal(parseTemplate('{{.Id}}\\t{{.Size}}\\n').render(data), 'sha256:abc\t1234\n');
    assert.equal(parseTemplate('x{{/* note */}}y').render(data), 'xy');
  });

  it('table formats: a header from the field labels, cells aligned at the tabs', () => {
    const t = parseTemplate('table {{.ID}}\\t{{.Repository}}');
    assert.ok(t.table);
    const out = renderRows(t, [{ ID: 'abc', Repository: 'long-repository' }, { ID: 'abcdef', Repository: 'r' }], { ID: 'IMAGE ID' }, (s) => s, formatTable);
    assert.equal(out, 'IMAGE ID   REPOSITORY\nabc        long-repository\nabcdef     r\n');
    const plain = renderRows(parseTemplate('{{.ID}}'), [{ ID: 'a' }, { ID: 'b' }], {}, (s) => s, formatTable);
    assert.equal(plain, 'a\nb\n');
  });

  it('values are escaped by the caller, the format text is not', () => {
    const t = parseTemplate('{{.V}}\\t!');
    assert.equal(t.render({ V: 'a\x1b[2Jb' }, (s) => s.replace(/\x1b/g, '\\x1b')), 'a\\x1b[2Jb\t!');
  });

  it('show prints like Go %v', () => {
    assert.equal(show([1, 'a', [true]]), '[1 a [true]]');
    assert.equal(show({ b: 1, a: { c: null } }), 'map[a:map[c:<nil>] b:1]');
  });
});

describe('glob (Go path.Match, docker reference=)', () => {
  it('matches as path.Match does', () => {
    assert.ok(globMatcher('busy*')('busybox'));
    assert.ok(!globMatcher('busy*')('library/busybox'), '* stops at /');
    assert.ok(globMatcher('*/*')('library/busybox'));
    assert.ok(globMatcher('busybox:1.?')('busybox:1.6'));
    assert.ok(globMatcher('app:[0-9]*')('app:12'));
    assert.ok(!globMatcher('app:[^0-9]*')('app:12'));
    assert.ok(globMatcher('a\\*b')('a*b'));
    assert.ok(!globMatcher('a\\*b')('axb'));
    assert.ok(globMatcher('localhost:5000/x')('localhost:5000/x'), 'regex characters are literal');
    assert.ok(!globMatcher('a.c')('abc'));
  });

  it('a malformed pattern is TSG_USAGE', () => {
    usage(() => globMatcher('app:['), /bad pattern/);
    usage(() => globMatcher('x\\'), /bad pattern/);
  });
});

describe('times and names as docker shows them', () => {
  it('humanDuration', () => {
    const s = 1000;
    const h = 3600 * s;
    assert.equal(humanDuration(500), 'Less than a second');
    assert.equal(humanDuration(1 * s), '1 second');
    assert.equal(humanDuration(30 * s), '30 seconds');
    assert.equal(humanDuration(61 * s), 'About a minute');
    assert.equal(humanDuration(5 * 60 * s), '5 minutes');
    assert.equal(humanDuration(h), 'About an hour');
    assert.equal(humanDuration(47 * h), '47 hours');
    assert.equal(humanDuration(3 * 24 * h), '3 days');
    assert.equal(humanDuration(21 * 24 * h), '3 weeks');
    assert.equal(humanDuration(90 * 24 * h), '3 months');
    assert.equal(humanDuration(3 * 365 * 24 * h), '3 years');
  });

  it('createdSince / createdAt', () => {
    const now = Date.parse('2024-01-22T00:00:00Z');
    assert.equal(createdSince('2024-01-01T00:00:00Z', now), '3 weeks ago');
    assert.equal(createdSince(undefined, now), 'N/A');
    assert.equal(createdSince('garbage', now), 'N/A');
    assert.equal(createdAt('2024-01-01T00:00:00Z'), '2024-01-01 00:00:00 +0000 UTC');
  });

  it('splitName', () => {
    assert.deepEqual(splitName('docker.io/library/busybox:latest'), { repository: 'docker.io/library/busybox', tag: 'latest' });
    assert.deepEqual(splitName('localhost:5000/app:1'), { repository: 'localhost:5000/app', tag: '1' });
    assert.deepEqual(splitName('localhost:5000/app@sha256:abc'), { repository: 'localhost:5000/app', tag: '<none>' });
  });
});

describe('format templates: text outside actions', () => {
  it('is printed as it is, braces included (as Go)', () => {
    assert.equal(parseTemplate('{{.Id}} }} {').render(data), 'sha256:abc }} {');
  });
});
