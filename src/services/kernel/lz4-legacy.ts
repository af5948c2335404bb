/**
 * Decoder for the LZ4 "legacy" frame format, the one Linux uses for
 * lz4-compressed kernel images: magic 0x184C2102, then blocks each prefixed
 * with its compressed size (u32 LE), each decompressing to at most 8 MiB.
 * The kernel appends the total decompressed size (u32 LE) after the last
 * block; callers pass it as `expectedSize`.
 */

const LEGACY_MAGIC = 0x184c2102;

export class Lz4FormatError extends Error {}

/** A length of 15 continues in extra bytes, each added, until one is not 255. Returns [length, next index]. */
function extendLength(src: Buffer, start: number, base: number): [number, number] {
  let length = base;
  let i = start;
  let byte: number;
  do {
    byte = src[i++] ?? 0;
    length += byte;
  } while (byte === 255 && i < src.length);
  return [length, i];
}

/** Decompresses one raw LZ4 block into `dst` at `dstPos`; returns the new position. */
function decodeBlock(src: Buffer, dst: Buffer, dstPos: number): number {
  let i = 0;
  let out = dstPos;
  while (i < src.length) {
    const token = src[i++] ?? 0;
    let literals = token >> 4;
    if (literals === 15) [literals, i] = extendLength(src, i, literals);
    if (out + literals > dst.length || i + literals > src.length) throw new Lz4FormatError('literal run overflows');
    src.copy(dst, out, i, i + literals);
    i += literals;
    out += literals;
    if (i >= src.length) break; // the last sequence has literals only
    const offset = (src[i] ?? 0) | ((src[i + 1] ?? 0) << 8);
    i += 2;
    // Legacy blocks are independent: a match never reaches into an earlier block.
    if (offset === 0 || offset > out - dstPos) throw new Lz4FormatError('match offset out of range');
    let matchLength = token & 15;
    if (matchLength === 15) [matchLength, i] = extendLength(src, i, matchLength);
    matchLength += 4;
    if (out + matchLength > dst.length) throw new Lz4FormatError('match overflows the output');
    // Byte by byte: matches may overlap their own output (run-length style).
    let from = out - offset;
    for (let k = 0; k < matchLength; k++) dst[out++] = dst[from++] ?? 0;
  }
  return out;
}

export function decodeLz4Legacy(input: Buffer, expectedSize: number): Buffer {
  if (input.length < 4 || input.readUInt32LE(0) !== LEGACY_MAGIC) throw new Lz4FormatError('not an LZ4 legacy stream');
  const output = Buffer.alloc(expectedSize);
  let position = 4;
  let written = 0;
  while (position + 4 <= input.length && written < expectedSize) {
    const size = input.readUInt32LE(position);
    position += 4;
    if (size === LEGACY_MAGIC) continue; // concatenated streams restart with the magic
    if (position + size > input.length) throw new Lz4FormatError('truncated block');
    written = decodeBlock(input.subarray(position, position + size), output, written);
    position += size;
  }
  if (written !== expectedSize) throw new Lz4FormatError(`decompressed ${written} bytes, expected ${expectedSize}`);
  return output;
}
