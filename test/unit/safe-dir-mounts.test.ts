/**
 * Walks of a container's tree never cross a mount point (review of issue 10,
 * F3): a host directory bound or propagated into the merged view is refused
 * with TSG_UNSAFE_PATH instead of being read (exportContainer, diff, commit
 * all walk through SafeNode.open).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SafeNode } from '../../src/util/safe-dir.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

test('SafeNode.open refuses a child that is a mount point; same-mount children open', (t) => {
  const tmp = mountTmpfs('16m');
  t.after(() => tmp.cleanup());
  const tree = join(tmp.dir, 'tree');
  const host = join(tmp.dir, 'host-secret');
  fs.mkdirSync(join(tree, 'sub'), { recursive: true });
  fs.mkdirSync(join(tree, 'plain'));
  fs.mkdirSync(host);
  fs.writeFileSync(join(host, 'shadow'), 'secret');
  fs.writeFileSync(join(tree, 'file'), 'x');
  fs.writeFileSync(join(tree, 'bound-file'), 'x');
  execFileSync('mount', ['--bind', host, join(tree, 'sub')]);
  execFileSync('mount', ['--bind', join(host, 'shadow'), join(tree, 'bound-file')]);
  const root = SafeNode.openRoot(tree);
  try {
    for (const name of ['sub', 'bound-file']) {
      assert.throws(() => root.open(name), { code: 'TSG_UNSAFE_PATH', message: /is a mount point inside the tree: not read/ }, name);
    }
    for (const name of ['plain', 'file']) root.open(name)!.close();
  } finally {
    root.close();
  }
});
