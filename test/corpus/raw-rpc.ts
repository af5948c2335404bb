import { connect, type Socket } from 'node:net';

/**
 * A deliberately naive JSON-RPC client for the corpus: it writes whatever
 * bytes a case says (broken frames included) to the daemon's socket and
 * reports what came back. Framing is the daemon's: `Content-Length: N\r\n\r\n`
 * and N bytes of UTF-8 JSON (vscode-jsonrpc on the daemon side; see
 * src/rpc/client.ts for banger's own client).
 */

export interface Reply {
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: { code?: string; message?: string; hint?: string } };
}

/**
 * What to do after sending a case's bytes:
 * - `probe`: send a ping on the same connection and read until it is answered
 *   (or the daemon closes): every reply before it belongs to the case;
 * - `dropped`: send a ping as for `probe`, keep our side open and read until
 *   the daemon closes (for bytes that leave the connection unusable: the
 *   daemon must hang up rather than wait in silence, and not answer the ping);
 * - `hang-up`: close our sending side and read until the daemon closes (for
 *   bytes whose connection the daemon hands elsewhere, as a stream's);
 * - `disconnect`: drop the connection as soon as the bytes are sent (a client
 *   that goes away mid-request; the daemon may not have read them yet);
 * - `disconnect-in-flight`: drop it once the daemon serves the request
 *   (`inFlight` resolves), so its cancellation is what the case exercises.
 */
export type Then = 'probe' | 'dropped' | 'hang-up' | 'disconnect' | 'disconnect-in-flight';

export interface Exchange {
  /** Replies to anything but the probe, in arrival order. */
  replies: Reply[];
  probeAnswered: boolean;
  /** The daemon closed the connection (or we did, for `disconnect`). */
  closed: boolean;
  /** Bytes that did not parse as a reply frame. */
  unparsed: number;
}

const PROBE_ID = 'corpus-probe';
const HEADER_END = Buffer.from('\r\n\r\n');

export function frame(body: string | Buffer): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(`Content-Length: ${bytes.length}\r\n\r\n`, 'ascii'), bytes]);
}

export function request(id: number | string, method: string, params?: unknown): Buffer {
  return frame(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
}

export function exchange(socketPath: string, chunks: readonly Buffer[], then: Then, inFlight?: () => Promise<void>): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(socketPath);
    const outcome: Exchange = { replies: [], probeAnswered: false, closed: false, unparsed: 0 };
    let buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      outcome.unparsed = buffer.length;
      socket.destroy();
      resolve(outcome);
    };
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // The daemon may drop a connection we are still writing to; that is an outcome, not a test failure.
      if (error.code === 'EPIPE' || error.code === 'ECONNRESET') return;
      if (!settled) reject(error);
    });
    socket.on('close', () => {
      outcome.closed = true;
      finish();
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const headerEnd = buffer.indexOf(HEADER_END);
        if (headerEnd < 0) return;
        const length = /Content-Length:\s*(\d+)/i.exec(buffer.subarray(0, headerEnd).toString('ascii'))?.[1];
        if (length === undefined) return;
        const start = headerEnd + HEADER_END.length;
        if (buffer.length < start + Number(length)) return;
        const message = JSON.parse(buffer.subarray(start, start + Number(length)).toString('utf8')) as Reply & { method?: string };
        buffer = buffer.subarray(start + Number(length));
        if (message.method !== undefined) continue; // a notification (progress), not a reply
        if (message.id === PROBE_ID) {
          outcome.probeAnswered = true;
          finish();
          return;
        }
        outcome.replies.push(message);
      }
    });
    socket.once('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
      if (then === 'probe' || then === 'dropped') socket.write(request(PROBE_ID, 'daemon.ping', {}));
      else if (then === 'hang-up') socket.end();
      else {
        const waited = then === 'disconnect-in-flight' && inFlight !== undefined ? inFlight() : Promise.resolve();
        socket.write(Buffer.alloc(0), () => {
          void waited.then(() => {
            outcome.closed = true;
            finish();
          }, reject);
        });
      }
    });
  });
}
