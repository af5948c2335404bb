import type { Readable, Writable } from 'node:stream';

import type { ChangedFile } from '../../rpc/methods.js';

/**
 * Reads the export script's stdout (see exportScript): the base commit line,
 * the byte length of the name-status list, the list, then the patch, which is
 * passed on to `out` as it arrives, respecting `out`'s backpressure. `done`
 * resolves when stdout ends: with the parsed header, or undefined when the
 * script stopped before writing one (it failed; its exit status says why).
 */
export function readExportHeader(stdout: Readable, out: Writable): { done: Promise<{ base: string; files: ChangedFile[]; patchBytes: number } | undefined> } {
  let head = Buffer.alloc(0);
  let header: { base: string; files: ChangedFile[] } | undefined;
  let patchBytes = 0;

  const forward = (chunk: Buffer): void => {
    if (chunk.length === 0) return;
    patchBytes += chunk.length;
    if (!out.write(chunk)) {
      stdout.pause();
      out.once('drain', () => stdout.resume());
    }
  };

  const done = new Promise<{ base: string; files: ChangedFile[]; patchBytes: number } | undefined>((resolve, reject) => {
    stdout.on('data', (chunk: Buffer) => {
      if (header !== undefined) {
        forward(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const first = head.indexOf(0x0a);
      const second = first < 0 ? -1 : head.indexOf(0x0a, first + 1);
      if (second < 0) return;
      const length = Number(
        head
          .subarray(first + 1, second)
          .toString('latin1')
          .trim(),
      );
      if (!Number.isInteger(length) || length < 0) {
        reject(new Error('export: malformed header from the guest'));
        stdout.destroy();
        return;
      }
      if (head.length < second + 1 + length) return;
      header = { base: head.subarray(0, first).toString('latin1').trim(), files: parseNameStatus(head.subarray(second + 1, second + 1 + length)) };
      forward(head.subarray(second + 1 + length));
      head = Buffer.alloc(0);
    });
    stdout.once('end', () => {
      resolve(header === undefined ? undefined : { ...header, patchBytes });
    });
    stdout.once('error', reject);
  });
  return { done };
}

/** `git diff --name-status -z --no-renames`: status NUL path NUL, repeated. */
export function parseNameStatus(list: Buffer): ChangedFile[] {
  const parts = list.toString('utf8').split('\0');
  const files: ChangedFile[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const status = parts[i] ?? '';
    const path = parts[i + 1] ?? '';
    if (status !== '' && path !== '') files.push({ status, path });
  }
  return files;
}
