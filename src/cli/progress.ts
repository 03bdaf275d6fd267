/**
 * Pull progress for people: one bar per blob on a TTY (cli-progress), plain
 * lines when stderr is piped, nothing with --quiet or --json.
 */
import cliProgress from 'cli-progress';
import { shortDigest } from '../digest.js';
import type { PullEvent } from '../store/pull.js';
import { formatBytes } from './output.js';

export type ProgressMode = 'bars' | 'lines' | 'none';

export function progressMode(opts: { quiet?: boolean; json?: boolean }): ProgressMode {
  if (opts.quiet || opts.json) return 'none';
  return process.stderr.isTTY ? 'bars' : 'lines';
}

export class PullProgress {
  #multi: cliProgress.MultiBar | undefined;
  #bars = new Map<string, cliProgress.SingleBar>();

  constructor(private readonly mode: ProgressMode) {
    if (mode === 'bars') {
      this.#multi = new cliProgress.MultiBar(
        {
          stream: process.stderr,
          format: '{id} {kind} [{bar}] {pct}  {done} / {total}',
          barCompleteChar: '=',
          barIncompleteChar: ' ',
          barsize: 30,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          fps: 10,
        },
        cliProgress.Presets.legacy,
      );
    }
  }

  line(text: string): void {
    if (this.mode === 'none') return;
    if (this.#multi) this.#multi.log(`${text}\n`);
    else process.stderr.write(`${text}\n`);
  }

  handle = (e: PullEvent): void => {
    if (this.mode === 'none') return;
    switch (e.type) {
      case 'resolved':
        this.line(`Resolved ${e.source} to ${e.digest}`);
        break;
      case 'blob-exists':
        if (e.kind === 'layer') this.line(`${shortDigest(e.digest)}: already exists`);
        break;
      case 'blob-start':
        if (this.#multi) {
          const bar = this.#multi.create(e.size, e.offset, this.#payload(e.digest, e.kind, e.offset, e.size));
          this.#bars.set(e.digest, bar);
        } else if (e.kind === 'layer') {
          this.line(`${shortDigest(e.digest)}: downloading ${formatBytes(e.size)}${e.offset ? ` (resuming at ${formatBytes(e.offset)})` : ''}`);
        }
        break;
      case 'blob-progress':
        this.#bars.get(e.digest)?.update(e.current, this.#payload(e.digest, e.kind, e.current, e.size));
        break;
      case 'blob-done': {
        const bar = this.#bars.get(e.digest);
        if (bar) bar.update(e.size, this.#payload(e.digest, e.kind, e.size, e.size));
        else if (e.kind === 'layer') this.line(`${shortDigest(e.digest)}: pull complete`);
        break;
      }
      default:
        break;
    }
  };

  #payload(digest: string, kind: string, current: number, total: number): Record<string, string> {
    return {
      id: shortDigest(digest),
      kind: kind.padEnd(6),
      pct: `${total ? Math.floor((current / total) * 100) : 100}%`.padStart(4),
      done: formatBytes(current),
      total: formatBytes(total),
    };
  }

  stop(): void {
    this.#multi?.stop();
  }
}
