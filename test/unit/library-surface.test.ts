/**
 * The public surface (issue 10): test/types/consumer.ts, written the way a
 * runtime uses tsgraph, compiles against 'tsgraph' (src/index.ts); the same
 * consumer fails to compile against a surface with one export removed or one
 * export's type changed (so this test can fail); and every export of
 * src/index.ts has TSDoc, as has every public member of the runtime API.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import ts from 'typescript';
import { REPO_ROOT } from '../helpers/cli.js';

const TYPES = join(REPO_ROOT, 'test', 'types');
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const INDEX = join(REPO_ROOT, 'src', 'index.ts');
/** Modules whose exported classes and interfaces must document every public member too (the runtime API of issue 10). */
const MEMBERS_CHECKED = [
  'src/store/store.ts',
  'src/store/store-options.ts',
  'src/store/history.ts',
  'src/store/usage.ts',
  'src/store/tar-streams.ts',
  'src/runtime/bundle.ts',
  'src/runtime/spec.ts',
  'src/registry/login.ts',
  'src/errors.ts',
];

/** Runs tsc on a project; resolves with its exit code and output (never rejects). */
async function tsc(project: string, extra: string[] = []): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [TSC, '-p', project, '--pretty', 'false', ...extra], { cwd: REPO_ROOT, timeout: 240_000, maxBuffer: 16 << 20 });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/**
 * A copy of src/index.ts (relative imports made absolute) changed by `mutate`,
 * and a tsconfig compiling the consumer against it. Returns the project path.
 */
function mutantProject(dir: string, mutate: (index: string) => string): string {
  fs.mkdirSync(dir);
  const index = fs.readFileSync(INDEX, 'utf8').replaceAll("from './", `from '${join(REPO_ROOT, 'src')}/`);
  const changed = mutate(index);
  assert.notEqual(changed, index, 'the mutation applies');
  fs.writeFileSync(join(dir, 'index.ts'), changed);
  fs.writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ extends: join(TYPES, 'tsconfig.json'), compilerOptions: { paths: { tsgraph: ['./index.ts'] } }, include: [join(TYPES, 'consumer.ts')] }),
  );
  return join(dir, 'tsconfig.json');
}

describe('public surface', () => {
  it('test/types/consumer.ts compiles against tsgraph (and examples/ with it)', async () => {
    const r = await tsc(join(TYPES, 'tsconfig.json'), ['--listFiles']);
    assert.equal(r.code, 0, r.out);
    // Really compiled (an exclude inherited from the root tsconfig once dropped it silently).
    assert.ok(r.out.includes(join(TYPES, 'consumer.ts')), 'the consumer is part of the program');
    assert.ok(r.out.includes(join(REPO_ROOT, 'examples', 'runtime-cycle.ts')), 'the example too');
  });

  it('the consumer fails when an export disappears or changes type', async () => {
    const base = join(TYPES, `.mutant-${randomBytes(4).toString('hex')}`);
    fs.mkdirSync(base);
    try {
      const removed = mutantProject(join(base, 'removed'), (s) => s.replace(/\bDiskUsage, /, ''));
      // A local export shadows the star export of errors.ts: same name, another type.
      const retyped = mutantProject(join(base, 'retyped'), (s) => `${s}\nexport declare const ERROR_CODES: Record<string, { category: string }>;\n`);
      const [a, b] = await Promise.all([tsc(removed), tsc(retyped)]);
      assert.notEqual(a.code, 0, 'a removed export breaks the consumer');
      assert.match(a.out, /consumer\.ts.*has no exported member .*DiskUsage/);
      assert.notEqual(b.code, 0, 'a changed type breaks the consumer');
      assert.match(b.out, /consumer\.ts/);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it('every export of src/index.ts has TSDoc, and every public member of the runtime API (Store, its options and results, errors, bundles, specs)', () => {
    const program = ts.createProgram([INDEX], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      skipLibCheck: true,
      types: ['node'],
      noEmit: true,
    });
    const checker = program.getTypeChecker();
    const documented = (sym: ts.Symbol) => ts.displayPartsToString(sym.getDocumentationComment(checker)).trim() !== '' || sym.getJsDocTags(checker).length > 0;
    const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(INDEX)!)!);
    assert.ok(exports.length > 100, `${exports.length} exports`);
    const missing: string[] = [];
    for (const ex of exports) {
      const sym = ex.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(ex) : ex;
      if (!documented(sym)) missing.push(`${ex.name} (${sym.declarations?.[0]?.getSourceFile().fileName.replace(`${REPO_ROOT}/`, '')})`);
      const file = sym.declarations?.[0]?.getSourceFile().fileName.replace(`${REPO_ROOT}/`, '') ?? '';
      if (MEMBERS_CHECKED.includes(file) && sym.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) {
        for (const [name, member] of [...(sym.members ?? new Map()), ...(sym.exports ?? new Map())] as Array<[string, ts.Symbol]>) {
          const decl = member.declarations?.[0];
          if (!decl || name === '__constructor' || name === 'prototype') continue;
          if (ts.getCombinedModifierFlags(decl) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
          if ((decl as ts.NamedDeclaration).name && ts.isPrivateIdentifier((decl as ts.NamedDeclaration).name!)) continue;
          if (!documented(member)) missing.push(`${ex.name}.${name}`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });
});
