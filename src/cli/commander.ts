/**
 * commander for the CLI, loaded with require(). Its ESM entry (esm.mjs) only
 * re-exports the same CommonJS file, and importing it makes Node parse that
 * file a second time for its export names: ~1.5–5 ms of every start (measured
 * with interleaved runs; see docs/benchmarks.md). Values and types are
 * exported under the same names, so verbs write `new Command(...)` and
 * `cmd: Command` as with a plain import.
 */
import { createRequire } from 'node:module';
import type * as Commander from 'commander';

const commander = createRequire(import.meta.url)('commander') as typeof Commander;

export const Command = commander.Command;
export type Command = Commander.Command;
export const Option = commander.Option;
export type Option = Commander.Option;
export const CommanderError = commander.CommanderError;
export type CommanderError = Commander.CommanderError;
export const Help = commander.Help;
export type Help = Commander.Help;
