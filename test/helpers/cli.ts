/** Runs the tsgraph CLI from source (through tsx), as a user would. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(REPO_ROOT, 'src', 'cli', 'main.ts');
const DIST_MAIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');

/**
 * How the CLI is started: from source through tsx (the default, always current), or the
 * compiled dist/ when TSGRAPH_TEST_CLI=dist (scripts/test.sh builds it first; a tsx start costs
 * ~0.3 s more, times ~300 CLI runs in the suite).
 */
export const CLI_ARGV: readonly string[] =
  process.env.TSGRAPH_TEST_CLI === 'dist' && existsSync(DIST_MAIN) ? [DIST_MAIN] : ['--import', 'tsx', MAIN];

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function spawnCli(args: string[], env: Record<string, string | undefined> = {}, stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  return spawn(process.execPath, [...CLI_ARGV, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
}

export async function runCli(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 120_000, input?: string): Promise<CliResult> {
  const child = spawnCli(args, env, input === undefined ? 'ignore' : 'pipe');
  if (input !== undefined) child.stdin!.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

/** Parses the JSON a `--json` run printed. */
export function parseJsonOutput<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}
