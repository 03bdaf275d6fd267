/**
 * Errors (issue 10): one class per category whatever the code. The table
 * (ERROR_CODES), the classes, every `new XError('TSG_…')` in src/ and the
 * exit-code table of docs/cli.md agree; a code known only at run time (a
 * worker thread's message) gets its category's class too.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import {
  BusyError,
  ERROR_CLASSES,
  ERROR_CODES,
  EXIT_CODES,
  type ErrorCategory,
  type ErrorCode,
  IntegrityError,
  TsgraphError,
  errorFromCode,
  isErrorCode,
  toTsgraphError,
} from '../../src/index.js';
import { reportError } from '../../src/cli/output.js';
import { REPO_ROOT } from '../helpers/cli.js';

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Every `new X(firstArg, …)` in src/ whose class name ends in Error: [class, first argument's text, where]. */
function constructions(): Array<{ cls: string; arg: string; where: string }> {
  const out: Array<{ cls: string; arg: string; where: string }> = [];
  for (const file of sourceFiles(join(REPO_ROOT, 'src'))) {
    const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node) => {
      if (ts.isNewExpression(n) && /Error$/.test(n.expression.getText(sf)) && n.arguments?.[0]) {
        const line = sf.getLineAndCharacterOfPosition(n.getStart()).line + 1;
        out.push({ cls: n.expression.getText(sf), arg: n.arguments[0].getText(sf), where: `${relative(REPO_ROOT, file)}:${line}` });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out;
}

describe('errors: one class per category', () => {
  it('ERROR_CODES: every code has a category, its class, the exit code of the category, a meaning', () => {
    assert.ok(CODES.length >= 30);
    for (const code of CODES) {
      const info = ERROR_CODES[code];
      assert.match(code, /^TSG_[A-Z_]+$/);
      assert.ok(info.meaning.length > 10, code);
      assert.equal(info.className, ERROR_CLASSES[info.category].name, code);
      assert.equal(info.exitCode, code === 'TSG_ABORTED' ? 130 : EXIT_CODES[info.category], code);
      assert.ok(isErrorCode(code));
    }
    assert.equal(isErrorCode('TSG_NOPE'), false);
    // Each class serves exactly one category.
    const classes = Object.values(ERROR_CLASSES);
    assert.equal(new Set(classes).size, classes.length);
  });

  it('errorFromCode and new TsgraphError(code) give the category class, whatever the code', () => {
    for (const code of CODES) {
      const { category, className } = ERROR_CODES[code];
      for (const e of [errorFromCode(code, 'm', { data: { x: 1 } }), new TsgraphError(code, 'm', { data: { x: 1 } })]) {
        assert.ok(e instanceof ERROR_CLASSES[category], `${code} is a ${className}`);
        assert.ok(e instanceof TsgraphError);
        assert.equal(e.name, className);
        assert.equal(e.category, category);
        assert.equal(e.code, code);
        assert.deepEqual(e.data, { x: 1 });
        assert.equal(e.message, 'm');
      }
    }
    // A code from a newer worker or a file: TSG_INTERNAL, the code kept in data.
    const odd = errorFromCode('TSG_FROM_THE_FUTURE', 'm');
    assert.equal(odd.code, 'TSG_INTERNAL');
    assert.equal(odd.data.code, 'TSG_FROM_THE_FUTURE');
    // The case the issue names: TSG_EXISTS was a BusyError in one place and the base class in another.
    assert.ok(new TsgraphError('TSG_EXISTS', 'x') instanceof BusyError);
    assert.ok(errorFromCode('TSG_INVALID_MANIFEST', 'x') instanceof IntegrityError);
    assert.equal(toTsgraphError(Object.assign(new Error('x'), { name: 'AbortError' })).code, 'TSG_ABORTED');
  });

  it('every `new XError(code, …)` in src/ uses the class of its code (or builds it from the table)', () => {
    const found = constructions();
    assert.ok(found.length > 100, 'the scan sees the sources');
    const bad: string[] = [];
    const classes = new Set(Object.values(ERROR_CLASSES).map((c) => c.name));
    for (const { cls, arg, where } of found) {
      // A computed code is safe: subclass constructors accept only their category's codes (a type
      // error otherwise), and `new TsgraphError(code)` yields the code's class.
      const literal = /^'(TSG_[A-Z_]+)'$/.exec(arg)?.[1];
      if (!literal) continue;
      if (!isErrorCode(literal)) bad.push(`${where}: unknown code ${literal}`);
      else if (!classes.has(cls)) bad.push(`${where}: ${literal} built as ${cls}, not a category class`);
      else if (ERROR_CODES[literal].className !== cls) bad.push(`${where}: ${literal} built as ${cls}, its class is ${ERROR_CODES[literal].className}`);
    }
    assert.deepEqual(bad, []);
  });

  it("docs/cli.md's exit-code table lists every code in its category's row", () => {
    const text = fs.readFileSync(join(REPO_ROOT, 'docs', 'cli.md'), 'utf8');
    const section = text.slice(text.indexOf('## Exit codes'));
    const rows = section.split('\n').filter((l) => /^\| \d/.test(l));
    const rowOf = new Map<string, number[]>();
    for (const row of rows) {
      const exit = Number(/^\| (\d+)/.exec(row)![1]);
      for (const m of row.matchAll(/`(TSG_[A-Z_]+)`/g)) rowOf.set(m[1]!, [...(rowOf.get(m[1]!) ?? []), exit]);
    }
    for (const code of CODES) {
      const listed = rowOf.get(code);
      assert.ok(listed, `${code} is in docs/cli.md's exit-code table`);
      assert.ok(listed.includes(ERROR_CODES[code].exitCode), `${code}: docs say ${listed}, the table ${ERROR_CODES[code].exitCode}`);
    }
    for (const code of rowOf.keys()) assert.ok(isErrorCode(code), `docs/cli.md names ${code}, which is no code`);
  });

  it('the CLI exits with the code of the category, for every code', () => {
    const out = process.stdout.write;
    try {
      process.stdout.write = (() => true) as typeof process.stdout.write; // --json prints the error
      for (const code of CODES) {
        const exit = reportError(errorFromCode(code, 'x'), { json: true } as never);
        assert.equal(exit, ERROR_CODES[code].exitCode, code);
      }
    } finally {
      process.stdout.write = out;
    }
  });

  it('ErrorCodeOf narrows the classes: a code of another category does not compile', () => {
    // Type-level: these lines are checked by `tsc` (the typecheck of test/), not run.
    const categoryOf = (c: ErrorCategory) => c;
    if (categoryOf('busy') !== 'busy') {
      // @ts-expect-error TSG_NOT_FOUND is not a busy code
      new BusyError('TSG_NOT_FOUND', 'x');
      // @ts-expect-error TSG_EXISTS is not an integrity code
      new IntegrityError('TSG_EXISTS', 'x');
    }
  });
});

it('TSG_ABORTED is its own category, interrupted (issue 11), with exit code 130', async () => {
  const errors = await import('../../src/errors.js');
  const e = new errors.TsgraphError('TSG_ABORTED', 'x');
  assert.ok(e instanceof errors.InterruptedError);
  assert.equal(e.category, 'interrupted');
  assert.equal(errors.ERROR_CODES.TSG_ABORTED.exitCode, 130);
  assert.equal(errors.ERROR_CODES.TSG_ABORTED.className, 'InterruptedError');
  assert.equal(errors.toTsgraphError(Object.assign(new Error('a'), { name: 'AbortError' })).category, 'interrupted');
});
