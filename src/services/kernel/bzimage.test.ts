import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { extractVmlinux } from './bzimage.js';

/** A synthetic bzImage: setup header fields where the boot protocol puts them, and an LZ4 payload. */
function bzImage(payloadContent: Buffer): Buffer {
  const setupSects = 1;
  const protectedMode = (setupSects + 1) * 512;
  const block = Buffer.concat([
    Buffer.from([payloadContent.length >= 15 ? 0xf0 : payloadContent.length << 4]),
    ...(payloadContent.length >= 15 ? [Buffer.from([payloadContent.length - 15])] : []),
    payloadContent,
  ]);
  const payload = Buffer.concat([
    Buffer.from([0x02, 0x21, 0x4c, 0x18]),
    Buffer.from(Uint32Array.of(block.length).buffer),
    block,
    Buffer.from(Uint32Array.of(payloadContent.length).buffer),
  ]);
  const image = Buffer.alloc(protectedMode + 64 + payload.length);
  image[0x1f1] = setupSects;
  image.write('HdrS', 0x202, 'latin1');
  image.writeUInt32LE(64, 0x248); // payload_offset, relative to the protected-mode code
  image.writeUInt32LE(payload.length, 0x24c);
  payload.copy(image, protectedMode + 64);
  return image;
}

const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.from('-pretend-vmlinux-body-')]);

test('the LZ4 payload of a bzImage decompresses to the vmlinux ELF', () => {
  assert.deepEqual(extractVmlinux(bzImage(elf)), elf);
});

test('a vmlinux ELF passes through unchanged', () => {
  assert.equal(extractVmlinux(elf), elf);
});

test('non-kernels and non-LZ4 payloads are clear errors', () => {
  const check = (image: Buffer, pattern: RegExp): void => {
    assert.throws(
      () => extractVmlinux(image),
      (e: unknown) => e instanceof BangerError && e.code === 'ERR_INVALID_ARGUMENT' && pattern.test(e.message),
    );
  };
  check(Buffer.alloc(4096), /not a bzImage/);
  const gzipped = bzImage(elf);
  gzipped.writeUInt32BE(0x1f8b0800, 2 * 512 + 64);
  check(gzipped, /payload compression is not LZ4/);
  check(bzImage(Buffer.from('this decompresses but is no ELF')), /not an ELF/);
});
