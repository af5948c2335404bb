import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';

/**
 * Byte streams between a client and bangerd, next to JSON-RPC.
 *
 * JSON-RPC carries control (the request, its progress, its result or error,
 * cancellation). Bytes that should not be base64'd into JSON, and that need
 * backpressure (a guest command's stdin/stdout/stderr, an exported patch),
 * travel on a second connection to the same socket:
 *
 *   1. the client connects and sends the header line `BANGER-STREAM/1 <token>\n`
 *      (token: 32 hex digits it chose);
 *   2. it calls the method with `streamToken: <token>`; the handler claims the
 *      connection by token (whichever of the two arrives first waits);
 *   3. both sides exchange frames `[kind u8][length u32 BE][payload]` until the
 *      daemon ends the connection after its last output frame. The method's
 *      result (an exit status, a file list) comes back over JSON-RPC.
 *
 * A JSON-RPC connection always begins with `Content-Length`, a stream
 * connection with `B`: the server tells them apart by the first byte.
 */

export const STREAM_HEADER_PREFIX = 'BANGER-STREAM/1 ';
/** First byte of a stream connection ('B'); a JSON-RPC one starts with 'C'. */
export const STREAM_FIRST_BYTE = 0x42;
export const STREAM_TOKEN_PATTERN = /^[0-9a-f]{32}$/;
/** The header line is short; anything longer without a newline is not a stream client. */
export const STREAM_HEADER_MAX = 64;

export const FrameKind = {
  /** client → daemon: bytes for the guest command's stdin. */
  stdin: 0x01,
  /** client → daemon: stdin reached its end. */
  stdinEnd: 0x02,
  /** client → daemon: deliver a signal (payload: its name without SIG, e.g. `INT`). */
  signal: 0x03,
  /** client → daemon: the terminal changed size (payload: cols u16 BE, rows u16 BE). */
  resize: 0x04,
  /** daemon → client: bytes of the command's stdout (or of the exported patch). */
  stdout: 0x11,
  /** daemon → client: bytes of the command's stderr. */
  stderr: 0x12,
  /** daemon → client: a note from banger for the user (UTF-8 text), shown on stderr. */
  notice: 0x13,
} as const;

export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];

const KNOWN_KINDS = new Set<number>(Object.values(FrameKind));
const HEADER_BYTES = 5;
/** Upper bound of one frame's payload; writers split larger chunks. */
export const MAX_FRAME_PAYLOAD = 1024 * 1024;

export function newStreamToken(): string {
  return randomBytes(16).toString('hex');
}

export function streamHeader(token: string): Buffer {
  return Buffer.from(`${STREAM_HEADER_PREFIX}${token}\n`, 'latin1');
}

/** Encodes one or more frames (payloads above MAX_FRAME_PAYLOAD are split). */
export function encodeFrames(kind: FrameKindValue, payload: Buffer = Buffer.alloc(0)): Buffer[] {
  const frames: Buffer[] = [];
  let offset = 0;
  do {
    const part = payload.subarray(offset, offset + MAX_FRAME_PAYLOAD);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt8(kind, 0);
    header.writeUInt32BE(part.length, 1);
    frames.push(header, part);
    offset += part.length;
  } while (offset < payload.length);
  return frames;
}

export function encodeResize(cols: number, rows: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt16BE(Math.min(Math.max(cols, 1), 0xffff), 0);
  payload.writeUInt16BE(Math.min(Math.max(rows, 1), 0xffff), 2);
  return payload;
}

export function decodeResize(payload: Buffer): { cols: number; rows: number } | undefined {
  if (payload.length !== 4) return undefined;
  return { cols: payload.readUInt16BE(0), rows: payload.readUInt16BE(2) };
}

export interface Frame {
  kind: FrameKindValue;
  payload: Buffer;
}

/**
 * Incremental frame decoder: feed it chunks as they arrive, get whole frames
 * back. An unknown kind or an oversized length is a protocol error (thrown):
 * the connection should be dropped.
 */
export class FrameDecoder {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: Frame[] = [];
    while (this.#pending.length >= HEADER_BYTES) {
      const kind = this.#pending.readUInt8(0);
      const length = this.#pending.readUInt32BE(1);
      if (!KNOWN_KINDS.has(kind)) throw new Error(`stream protocol: unknown frame kind 0x${kind.toString(16)}`);
      if (length > MAX_FRAME_PAYLOAD) throw new Error(`stream protocol: frame of ${length} bytes exceeds the limit`);
      if (this.#pending.length < HEADER_BYTES + length) break;
      frames.push({ kind: kind as FrameKindValue, payload: Buffer.from(this.#pending.subarray(HEADER_BYTES, HEADER_BYTES + length)) });
      this.#pending = this.#pending.subarray(HEADER_BYTES + length);
    }
    return frames;
  }

  /** Bytes received that do not yet make a whole frame. */
  get buffered(): number {
    return this.#pending.length;
  }
}

/** Writes a payload as frames; true when the socket can take more right away (also when it is gone). */
export function writeFrames(socket: Socket, kind: FrameKindValue, payload?: Buffer): boolean {
  if (socket.destroyed || socket.writableEnded) return true;
  let ok = true;
  for (const part of encodeFrames(kind, payload)) ok = socket.write(part) && ok;
  return ok;
}

/** Resolves when a full socket has room again, or is closed (then there is nothing to wait for). */
export function whenWritable(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.once('drain', done);
    socket.once('close', done);
  });
}

/**
 * Decodes the frames arriving on a socket and hands each to `onFrame`; a
 * protocol error drops the connection. Returns a function that feeds bytes
 * already read off the socket (they go first).
 */
export function readFrames(socket: Socket, onFrame: (frame: Frame) => void): (bytes: Buffer) => void {
  const decoder = new FrameDecoder();
  const feed = (chunk: Buffer): void => {
    let frames: Frame[];
    try {
      frames = decoder.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    for (const frame of frames) onFrame(frame);
  };
  socket.on('data', feed);
  return feed;
}
