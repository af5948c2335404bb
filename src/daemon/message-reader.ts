import type { Readable } from 'node:stream';

import { AbstractMessageReader, Disposable, ErrorCodes, type DataCallback, type Message, type MessageReader } from 'vscode-jsonrpc/node';

/**
 * Reads JSON-RPC messages off one daemon connection for vscode-jsonrpc, in
 * place of its SocketMessageReader. That reader leaves bad input unanswered:
 * a body that is not JSON and a message that is not a request only reach
 * `onError` or a null logger, so the client waits forever; broken framing
 * (no or a non-numeric Content-Length) leaves the connection open and silent;
 * any Content-Length is believed, so a client can make the daemon buffer
 * without bound. This reader:
 * - frames strictly: header lines `Name: value`, a `Content-Length` of
 *   decimal digits up to MAX_CONTENT_LENGTH, a header section of at most
 *   MAX_HEADER_BYTES. Anything else is a FramingError (fired on `onError`),
 *   after which it reads nothing more: the byte stream cannot be resynced,
 *   so the connection must be closed (the server does);
 * - hands every body that is not a JSON-RPC request or notification to
 *   `refuse` with the error to answer (-32700 for a body that is not JSON,
 *   -32600 for a message that is not a request), and goes on reading;
 * - passes only well-formed requests and notifications on.
 * Any error while reading (framing, the socket's own) is fired on `onError`
 * and ends reading.
 */

/** The largest message body accepted. Requests are small (bytes travel on streams, see src/rpc/stream.ts); this bounds what one client makes the daemon buffer. */
export const MAX_CONTENT_LENGTH = 64 * 1024 * 1024;
/** The largest header section accepted; a real one is a line or two. */
export const MAX_HEADER_BYTES = 8 * 1024;

const HEADER_END = Buffer.from('\r\n\r\n');
const CANCEL_METHOD = '$/cancelRequest';

/** A message the daemon answers itself with a JSON-RPC error: its id (null when it had no valid one), and the error. */
export interface Refusal {
  id: string | number | null;
  code: number;
  message: string;
}

/** Bytes that are not `headers CRLF CRLF body`: the connection cannot be read any further. */
export class FramingError extends Error {
  override name = 'FramingError';
}

export class CheckedMessageReader extends AbstractMessageReader implements MessageReader {
  readonly #stream: Readable;
  readonly #refuse: (refusal: Refusal) => void;
  /** Bytes received and not yet consumed: a partial header section, or the start of a body. */
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The body length announced by the last header section, until that body is complete. */
  #bodyLength: number | undefined;
  #broken = false;

  constructor(stream: Readable, refuse: (refusal: Refusal) => void) {
    super();
    this.#stream = stream;
    this.#refuse = refuse;
  }

  listen(callback: DataCallback): Disposable {
    const onData = (chunk: Buffer): void => {
      this.#receive(chunk, callback);
    };
    const onError = (error: Error): void => {
      this.fireError(error);
    };
    const onClose = (): void => {
      this.fireClose();
    };
    this.#stream.on('data', onData);
    this.#stream.on('error', onError);
    this.#stream.on('close', onClose);
    return Disposable.create(() => {
      this.#stream.off('data', onData);
      this.#stream.off('error', onError);
      this.#stream.off('close', onClose);
    });
  }

  #receive(chunk: Buffer, callback: DataCallback): void {
    if (this.#broken) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    try {
      for (;;) {
        if (this.#bodyLength === undefined) {
          this.#bodyLength = this.#readHeaders();
          if (this.#bodyLength === undefined) return;
        }
        if (this.#buffered < this.#bodyLength) return;
        const body = this.#take(this.#bodyLength);
        this.#bodyLength = undefined;
        this.#deliver(body, callback);
      }
    } catch (error) {
      // Framing, or (never expected) vscode-jsonrpc throwing on a message: either way this connection is done.
      this.#broken = true;
      this.#chunks = [];
      this.#buffered = 0;
      this.fireError(error);
    }
  }

  /** The Content-Length of a complete header section at the front (consumed), or undefined while it is incomplete. */
  #readHeaders(): number | undefined {
    const pending = this.#joined();
    const end = pending.subarray(0, MAX_HEADER_BYTES + HEADER_END.length).indexOf(HEADER_END);
    if (end < 0) {
      if (pending.length >= MAX_HEADER_BYTES + HEADER_END.length) throw new FramingError(`no end of headers within ${MAX_HEADER_BYTES} bytes`);
      return undefined;
    }
    const headers = pending.subarray(0, end).toString('latin1');
    this.#take(end + HEADER_END.length);
    return contentLength(headers);
  }

  /** The buffered bytes as one buffer (copied together only when they arrived in several chunks). */
  #joined(): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks, this.#buffered)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** The first `count` buffered bytes, removed from the buffer. */
  #take(count: number): Buffer {
    const all = this.#joined();
    const rest = all.subarray(count);
    this.#chunks = rest.length === 0 ? [] : [rest];
    this.#buffered = rest.length;
    return all.subarray(0, count);
  }

  #deliver(body: Buffer, callback: DataCallback): void {
    let value: unknown;
    try {
      // Invalid UTF-8 becomes U+FFFD, as with vscode-jsonrpc: a string param with it fails its own check.
      value = JSON.parse(body.toString('utf8'));
    } catch {
      this.#refuse({ id: null, code: ErrorCodes.ParseError, message: `Parse error: the message body (${body.length} bytes) is not JSON` });
      return;
    }
    const checked = classify(value);
    if (checked === undefined) return;
    if ('code' in checked) this.#refuse(checked);
    else callback(checked);
  }
}

/** The body length the header section `headers` (without its closing CRLF CRLF) announces. */
export function contentLength(headers: string): number {
  let length: number | undefined;
  for (const line of headers.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new FramingError('a header line is not "Name: value"');
    if (line.slice(0, colon).trim().toLowerCase() !== 'content-length') continue;
    const value = line.slice(colon + 1).trim();
    if (length !== undefined) throw new FramingError('Content-Length is given twice');
    if (!/^[0-9]{1,16}$/.test(value)) throw new FramingError('Content-Length is not a number of bytes');
    length = Number(value);
    if (length > MAX_CONTENT_LENGTH) throw new FramingError(`Content-Length ${length} is over the limit of ${MAX_CONTENT_LENGTH} bytes`);
  }
  if (length === undefined) throw new FramingError('no Content-Length header');
  return length;
}

/**
 * What to do with a parsed body: a request or notification to pass on, a
 * refusal to answer (-32600), or undefined to drop it. Dropped: responses
 * (the daemon sends no requests, so it awaits none) and a `$/cancelRequest`
 * that names no request id (vscode-jsonrpc would throw on it; a notification
 * is never answered).
 */
export function classify(value: unknown): Message | Refusal | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return invalidRequest(null, Array.isArray(value) ? 'batches are not supported, send one request per message' : 'a message must be a JSON object');
  }
  const message = value as Record<string, unknown>;
  if (message.method === undefined && (message.result !== undefined || message.error !== undefined)) return undefined;
  const hasId = message.id !== undefined;
  const id = typeof message.id === 'string' || typeof message.id === 'number' ? message.id : null;
  if (hasId && id === null) return invalidRequest(null, '"id" must be a string or a number');
  if (message.jsonrpc !== '2.0') return invalidRequest(id, '"jsonrpc" must be "2.0"');
  if (message.method === undefined) return invalidRequest(id, 'no "method"');
  if (typeof message.method !== 'string') return invalidRequest(id, '"method" must be a string');
  if (!hasId && message.method === CANCEL_METHOD && !namesRequest(message.params)) return undefined;
  return message as unknown as Message;
}

function namesRequest(params: unknown): boolean {
  if (typeof params !== 'object' || params === null) return false;
  const { id } = params as { id?: unknown };
  return typeof id === 'string' || typeof id === 'number';
}

function invalidRequest(id: string | number | null, why: string): Refusal {
  return { id, code: ErrorCodes.InvalidRequest, message: `Invalid Request: ${why}` };
}
