/**
 * Preload (`node --import tsx --import ./load-recorder.ts main.ts ...`) that
 * writes every module the process loads after it, one per line, to the file
 * $TSGRAPH_LOAD_LOG: `esm <url>` from a resolve hook (which runs in Node's
 * hooks thread, so it appends itself) and `cjs <file>` from Module._load
 * (require()d CommonJS, native addons). What a start loads is a property of
 * the CLI that tests can assert, unlike its speed.
 */
import * as fs from 'node:fs';
import Module, { register } from 'node:module';

const log = process.env.TSGRAPH_LOAD_LOG;
if (log) {
  const hooks = `
    import { appendFileSync } from 'node:fs';
    let log;
    export function initialize(data) { log = data.log; }
    export async function resolve(specifier, context, next) {
      const r = await next(specifier, context);
      appendFileSync(log, 'esm ' + r.url + '\\n');
      return r;
    }`;
  register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { log } });
  const mod = Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown; _resolveFilename: (request: string, parent: unknown) => string };
  const load = mod._load;
  mod._load = function (request: string, parent: unknown, isMain: boolean) {
    const out = load.call(this, request, parent, isMain);
    let file = request;
    try {
      file = mod._resolveFilename(request, parent);
    } catch {
      /* keep the request */
    }
    fs.appendFileSync(log, `cjs ${file}\n`);
    return out;
  };
}
