import type { FileHandle } from 'node:fs/promises';

import { BangerError } from '../../rpc/errors.js';

/** Writing a tarball out of pieces of others: buffered writes, and byte ranges copied from a source file. */

const CHUNK = 1024 * 1024;

/** Collects small writes into large ones. */
export class BufferedWriter {
  readonly #file: FileHandle;
  #chunks: Buffer[] = [];
  #bytes = 0;

  constructor(file: FileHandle) {
    this.#file = file;
  }

  async write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (this.#bytes >= CHUNK) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#bytes === 0) return;
    const [first] = this.#chunks;
    const data = this.#chunks.length === 1 && first !== undefined ? first : Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks = [];
    this.#bytes = 0;
    await this.#file.write(data, 0, data.length);
  }
}

/** Copies `length` bytes at `start` of `source` to `writer`; a source that ends first is ERR_IMAGE_INVALID. */
export async function copyRange(source: FileHandle, writer: BufferedWriter, start: number, length: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const chunk = Buffer.alloc(Math.min(CHUNK, length - done));
    const { bytesRead } = await source.read(chunk, 0, chunk.length, start + done);
    if (bytesRead === 0)
      throw new BangerError('ERR_IMAGE_INVALID', 'a layer ended in the middle of a member', { hint: 'the layer is truncated; nothing was kept' });
    await writer.write(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
    done += bytesRead;
  }
}
