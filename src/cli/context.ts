/** What every verb gets from main: a signal that fires on SIGINT/SIGTERM. */
export interface CommandContext {
  signal: AbortSignal;
}
