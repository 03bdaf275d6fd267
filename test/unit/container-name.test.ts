/** Default container names (issue 11: the name must not be the registry host cut at its port). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContainerStore } from '../../src/store/containers.js';

test('the default container name is the image basename without tag, digest or registry port', () => {
  const cases: Array<[string, string]> = [
    ['localhost:5000/app:1', 'app'],
    ['127.0.0.1:5000/team/web@sha256:' + 'a'.repeat(64), 'web'],
    ['docker.io/library/busybox:latest', 'busybox'],
    ['registry.example:443/x/y/z', 'z'],
    ['localhost/busybox', 'busybox'],
    ['host:5000/ünïcode:tag', 'ncode'],
    ['host:5000/:tag', 'container'],
  ];
  for (const [image, base] of cases) assert.match(ContainerStore.defaultName(image), new RegExp(`^${base}-[0-9a-f]{6}$`), image);
});
