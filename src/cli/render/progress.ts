import type { ProgressEvent } from '../../rpc/methods.js';
import { formatBytes } from './text.js';

/**
 * Renders a long request's progress on stderr (stdout stays for the result):
 * - a terminal gets one live line per stage, rewritten as counts move, and a
 *   ✓ line when the stage is done;
 * - a pipe or file gets one line per stage;
 * - with --json, every event as a JSON line, for tools to follow along.
 */
export class ProgressRenderer {
  readonly #stream: NodeJS.WriteStream | NodeJS.WritableStream;
  readonly #json: boolean;
  readonly #live: boolean;
  #stage: string | undefined;
  #detail = '';
  #lineOpen = false;

  constructor(options: { json: boolean }, stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.#json = options.json;
    this.#live = !options.json && stream.isTTY && process.env.TERM !== 'dumb';
  }

  readonly onProgress = (event: ProgressEvent): void => {
    if (this.#json) {
      const { token: _token, ...rest } = event;
      this.#stream.write(JSON.stringify({ progress: rest }) + '\n');
      return;
    }
    if (event.stage !== this.#stage) {
      this.#finishStage();
      this.#stage = event.stage;
      this.#detail = event.detail;
      if (!this.#live) this.#stream.write(`• ${event.detail}\n`);
    }
    if (this.#live) {
      this.#detail = event.detail;
      this.#stream.write(`\r\x1b[K… ${event.detail}${formatProgressCounts(event)}`);
      this.#lineOpen = true;
    }
  };

  /** Closes the last stage line; call when the request is answered or failed. */
  done(succeeded: boolean): void {
    if (succeeded) this.#finishStage();
    else if (this.#lineOpen) this.#stream.write('\n');
    this.#lineOpen = false;
    this.#stage = undefined;
  }

  #finishStage(): void {
    if (this.#live && this.#stage !== undefined) this.#stream.write(`\r\x1b[K✓ ${this.#detail}\n`);
    this.#lineOpen = false;
  }
}

/** ` (12.0 MiB / 40.0 MiB, 30%)`: a progress event's counts as the CLI and the TUI show them ('' without counts). */
export function formatProgressCounts(event: ProgressEvent): string {
  if (event.current === undefined) return '';
  if (event.total === undefined) return ` (${formatBytes(event.current)})`;
  const percent = event.total > 0 ? Math.floor((event.current / event.total) * 100) : 100;
  return ` (${formatBytes(event.current)} / ${formatBytes(event.total)}, ${percent}%)`;
}
