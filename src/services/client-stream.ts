import type { Readable, Writable } from 'node:stream';

/**
 * The byte side of a request, as a service sees it: what the client sends
 * (stdin, signals, terminal size) and where output goes (stdout, stderr,
 * notices for the user). The daemon provides it from a stream connection
 * (src/rpc/stream.ts); tests can provide plain streams. Writes respect
 * backpressure: a slow client slows the producer, nothing piles up.
 */
export interface ClientStream {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  /** A message from banger for the user (shown on the client's stderr). */
  notice(text: string): void;
  onSignal(listener: (name: string) => void): void;
  onResize(listener: (cols: number, rows: number) => void): void;
  /** Aborted when the client's stream connection goes away. */
  gone: AbortSignal;
}
