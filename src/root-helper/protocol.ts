import { StringDecoder } from 'node:string_decoder';

/**
 * The root helper's wire format: one JSON object per line in each direction.
 * A request names an operation of the allow-list and its arguments; the
 * response carries the same id and either a result or an error with banger's
 * stable code and hint. Lines are capped so a client cannot make the helper
 * buffer without bound.
 */

export interface HelperRequest {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

export type HelperResponse = { id: number; result: unknown } | { id: number; error: { code: string; message: string; hint?: string | undefined } };

export const MAX_LINE_BYTES = 16 * 1024;

/** Directory of the helper's per-user sockets; `<uid>.sock` inside it is owned by that user, mode 0600. */
export const HELPER_SOCKET_DIR = '/run/banger-root';

/** Where the installed helper reads its policies (root-owned). */
export const HELPER_CONFIG = '/etc/banger/root-helper.json';

export function helperSocketPath(uid: number, dir: string = HELPER_SOCKET_DIR): string {
  return `${dir}/${uid}.sock`;
}

/** Splits a byte stream into lines; calls `onLine` for each complete one; `onOverflow` when a line exceeds the cap. */
export function lineReader(onLine: (line: string) => void, onOverflow: () => void): (chunk: Buffer) => void {
  const decoder = new StringDecoder('utf8'); // a character split across chunks stays whole
  let pending = '';
  let overflowed = false;
  return (chunk) => {
    if (overflowed) return;
    pending += decoder.write(chunk);
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (Buffer.byteLength(line) > MAX_LINE_BYTES) break;
      if (line.trim() !== '') onLine(line);
      newline = pending.indexOf('\n');
    }
    if (newline >= 0 || Buffer.byteLength(pending) > MAX_LINE_BYTES) {
      overflowed = true;
      pending = '';
      onOverflow();
    }
  };
}
