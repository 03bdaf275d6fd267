/**
 * Docker credential helpers (`credsStore` / `credHelpers` in docker's
 * config.json): `docker-credential-<name> get|store|erase|list`, the protocol
 * of github.com/docker/docker-credential-helpers:
 *   get    stdin: server URL            stdout: {"ServerURL","Username","Secret"}
 *                                       (not found: exit 1, "credentials not found in native keychain")
 *   store  stdin: {"ServerURL","Username","Secret"}
 *   erase  stdin: server URL
 *   list   stdout: {"<server URL>": "<user name>", ...}
 *
 * A helper is another program, so every run is bounded (time and output
 * size) and everything it says is distrusted: a helper that hangs, dies or
 * prints garbage is one TSG_AUTH_* line naming the helper and the action.
 * The secret is never part of an error: the helper's own words are never
 * repeated (a helper's error may quote what it holds — ours does in the
 * test — and for `get` we cannot know which part is secret), only the
 * action, its exit status and how much it printed.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { AuthError, InterruptedError, UsageError } from '../errors.js';
import type { Credentials } from './credentials.js';

/** Limits of one helper run. */
export const HELPER_TIMEOUT_MS = 30_000;
export const HELPER_MAX_OUTPUT = 64 << 10;

export type HelperAction = 'get' | 'store' | 'erase' | 'list';

/** A helper's name as written after `docker-credential-`: no path, no options. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** docker-credential-helpers' "not found" message (every helper of that project uses it). */
const NOT_FOUND_RE = /credentials not found|not found in (native )?keychain|no credentials/i;

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Test hook: overrides the time limit of helper runs (the garbage/hang tests use a short one). */
let timeoutMs = HELPER_TIMEOUT_MS;
export function setHelperTimeoutForTests(ms: number | undefined): void {
  timeoutMs = ms ?? HELPER_TIMEOUT_MS;
}

export function helperProgram(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new UsageError('TSG_USAGE', `credential helper name ${JSON.stringify(name.slice(0, 80))} in docker's config.json is not a plain name (docker-credential-<name> is looked up in PATH)`);
  }
  return `docker-credential-${name}`;
}

function authError(program: string, action: HelperAction, why: string, cause?: unknown): AuthError {
  return new AuthError('TSG_AUTH_FAILED', `credential helper ${program} ${action} failed: ${why}`, { cause, data: { helper: program, action } });
}

/** What a failed run said, described without repeating it. */
function failed(r: RunResult): string {
  const printed = Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr);
  return `exit status ${r.code}${printed ? ` (its ${printed}-byte message is not repeated: it may hold secrets)` : ''}`;
}

/** How long output may still drain after the helper exited (a grandchild may hold the pipes open). */
const DRAIN_GRACE_MS = 250;

/**
 * Runs the helper in its own process group (detached) so that everything it
 * started can be killed with it: waiting for 'close' alone waits for every
 * process holding its stdout/stderr, and a helper that leaves `sleep 1000 &`
 * behind would keep the call pending forever. We settle on 'exit' plus a short
 * bounded grace for the output to drain, then kill the group (leftovers of a
 * one-shot helper are ours to clean; real daemons such as gpg-agent setsid()
 * away first) and destroy the pipes. On timeout, flood or abort the group is
 * killed and the promise rejects at once. Detached, the helper no longer gets
 * a terminal's Ctrl-C, so while it runs a process 'exit' hook kills the group
 * if the CLI exits (on SIGINT, say) before the helper is done.
 */
function run(program: string, action: HelperAction, input: string, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new InterruptedError('TSG_ABORTED', `credential helper ${program} ${action} aborted`, { cause: signal.reason }));
      return;
    }
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true });
    } catch (err) {
      reject(authError(program, action, (err as Error).message, err));
      return;
    }
    let stdout = '';
    let stderr = '';
    let size = 0;
    let exitCode: number | null = null;
    let settled = false;
    let grace: NodeJS.Timeout | undefined;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is gone already.
      }
    };
    const onAbort = () => finish(new InterruptedError('TSG_ABORTED', `credential helper ${program} ${action} aborted`, { cause: signal?.reason }));
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      signal?.removeEventListener('abort', onAbort);
      process.off('exit', killGroup);
      killGroup();
      child.stdin.destroy();
      child.stdout.destroy();
      child.stderr.destroy();
      if (err) reject(err);
      else resolve({ code: exitCode, stdout, stderr });
    };
    process.on('exit', killGroup);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => finish(authError(program, action, `no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    const take = (which: 'out' | 'err') => (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > HELPER_MAX_OUTPUT) return finish(authError(program, action, `it printed more than ${HELPER_MAX_OUTPUT} bytes`));
      if (which === 'out') stdout += chunk.toString('utf8');
      else stderr += chunk.toString('utf8');
    };
    child.stdout.on('data', take('out'));
    child.stderr.on('data', take('err'));
    child.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? 'not found in PATH (install it, or fix credsStore/credHelpers in docker\'s config.json)' : err.message;
      finish(authError(program, action, why, err));
    });
    child.on('exit', (code) => {
      exitCode = code;
      // Whatever the helper wrote is in the pipes; a grandchild may keep them open, so drain briefly.
      grace = setTimeout(() => finish(), DRAIN_GRACE_MS);
    });
    child.on('close', () => finish());
    // A helper that exits without reading stdin gives EPIPE here; its exit status says what happened.
    child.stdin.on('error', () => {});
    child.stdout.on('error', () => {});
    child.stderr.on('error', () => {});
    child.stdin.end(input);
  });
}

/** One configured helper, e.g. `desktop` → docker-credential-desktop. */
export class CredentialHelper {
  readonly program: string;

  constructor(
    name: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.program = helperProgram(name);
  }

  /** The credentials stored for `serverUrl`, or undefined when the helper has none. */
  async get(serverUrl: string, signal?: AbortSignal): Promise<Credentials | undefined> {
    const r = await run(this.program, 'get', serverUrl, this.env, signal);
    if (r.code !== 0) {
      if (NOT_FOUND_RE.test(r.stdout) || NOT_FOUND_RE.test(r.stderr)) return undefined;
      throw authError(this.program, 'get', failed(r));
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.stdout);
    } catch {
      // Never quote it (nor keep the parser's message as a cause): garbage from `get` may hold the secret.
      throw authError(this.program, 'get', `its answer is not JSON (${r.stdout.length} bytes)`);
    }
    const p = parsed as { Username?: unknown; Secret?: unknown };
    if (!p || typeof p !== 'object' || typeof p.Username !== 'string' || typeof p.Secret !== 'string') {
      throw authError(this.program, 'get', 'its answer lacks the string fields Username and Secret');
    }
    if (p.Secret === '') return undefined;
    // `<token>` marks an identity token (OAuth refresh token), which only
    // docker.io's OAuth flow understands; as Basic credentials it would be wrong.
    if (p.Username === '<token>') return undefined;
    return { username: p.Username, password: p.Secret };
  }

  /** Saves credentials for `serverUrl` in the helper. */
  async store(serverUrl: string, creds: Credentials, signal?: AbortSignal): Promise<void> {
    const input = JSON.stringify({ ServerURL: serverUrl, Username: creds.username, Secret: creds.password });
    const r = await run(this.program, 'store', input, this.env, signal);
    if (r.code !== 0) throw authError(this.program, 'store', failed(r));
  }

  /** Removes the credentials of `serverUrl`; false when the helper had none. */
  async erase(serverUrl: string, signal?: AbortSignal): Promise<boolean> {
    const r = await run(this.program, 'erase', serverUrl, this.env, signal);
    if (r.code === 0) return true;
    if (NOT_FOUND_RE.test(r.stdout) || NOT_FOUND_RE.test(r.stderr)) return false;
    throw authError(this.program, 'erase', failed(r));
  }

  /** Server URL → user name of everything the helper stores. */
  async list(signal?: AbortSignal): Promise<Record<string, string>> {
    const r = await run(this.program, 'list', '', this.env, signal);
    if (r.code !== 0) throw authError(this.program, 'list', failed(r));
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.stdout);
    } catch {
      throw authError(this.program, 'list', `its answer is not JSON (${r.stdout.length} bytes)`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw authError(this.program, 'list', 'its answer is not a JSON object');
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) if (typeof v === 'string') out[k] = v;
    return out;
  }
}
