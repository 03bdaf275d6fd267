/**
 * `tsgraph login` / `tsgraph logout` (defined in ../program.ts): credentials
 * in docker's config.json, or in the credential helper it names for the
 * registry. Like `docker login`, a missing user name or password is asked
 * for on the terminal (the password without echo); without a terminal the
 * password comes from --password-stdin only — never from the command line.
 */
import type { Command } from '../commander.js';
import { InterruptedError, UsageError } from '../../errors.js';
import { parseCreds } from '../../registry/credentials.js';
import { login as registryLogin, logout as registryLogout } from '../../registry/login.js';
import { defaultConfigDirs } from '../../store/store.js';
import { type GlobalOptions, printJson, writeOut } from '../output.js';

export interface LoginFlags {
  username?: string;
  passwordStdin?: boolean;
  insecureRegistry?: boolean;
}

/** Longest password or user name accepted from stdin or the terminal. */
const MAX_INPUT = 64 << 10;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > MAX_INPUT) throw new UsageError('TSG_USAGE', `standard input is longer than ${MAX_INPUT} bytes; a password is expected`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * Reads one line from the terminal on stdin, echoing it or not. Raw mode
 * turns echo off (what docker's term.DisableEcho does); it is restored on
 * every way out, and Ctrl-C / Ctrl-D end the prompt as TSG_ABORTED.
 */
function promptLine(question: string, echo: boolean): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let line = '';
    const wasRaw = stdin.isRaw;
    // Echo off before the prompt shows: what is typed after it must never be echoed.
    stdin.setRawMode(true);
    process.stderr.write(question);
    const done = (err: Error | undefined) => {
      stdin.off('data', onData);
      stdin.setRawMode(wasRaw);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(undefined);
        if (ch === '\u0003' || ch === '\u0004') return done(new InterruptedError('TSG_ABORTED', 'login cancelled'));
        if (ch === '\u007f' || ch === '\b') {
          if (line.length > 0) {
            line = [...line].slice(0, -1).join('');
            if (echo) process.stderr.write('\b \b');
          }
          continue;
        }
        if (ch < ' ') continue; // other control characters (arrows send escapes) are not part of a password
        if (line.length >= MAX_INPUT) return done(new UsageError('TSG_USAGE', `input longer than ${MAX_INPUT} characters`));
        line += ch;
        if (echo) process.stderr.write(ch);
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

export async function login(registry: string, flags: LoginFlags, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const tty = process.stdin.isTTY === true && !flags.passwordStdin;
  let username = flags.username;
  let password: string;
  if (flags.passwordStdin) {
    if (!username) throw new UsageError('TSG_USAGE', '--password-stdin needs --username (-u)');
    password = await readStdin();
  } else if (tty) {
    if (!username) username = (await promptLine('Username: ', true)).trim();
    if (!username) throw new UsageError('TSG_USAGE', 'empty user name');
    password = await promptLine('Password: ', false);
  } else {
    throw new UsageError('TSG_USAGE', 'no terminal to ask for the password: give it with --password-stdin (it never goes on the command line)');
  }
  if (!password) throw new UsageError('TSG_USAGE', tty ? 'empty password' : 'empty password on standard input');
  const creds = parseCreds(`${username}:${password}`);
  const where = await registryLogin(registry, creds, { configDirs: defaultConfigDirs(), insecureRegistries: flags.insecureRegistry ? [registry] : [] });
  if (g.json) printJson({ registry, username, config: where });
  else writeOut(`Login Succeeded (${where})\n`);
}

export async function logout(registry: string, cmd: Command): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const removed = await registryLogout(registry);
  if (g.json) printJson({ registry, removed });
  else writeOut(removed ? `Removed login credentials for ${registry}\n` : `Not logged in to ${registry}\n`);
}
