import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { elfInterpreter, findExecutable, isStaticElf } from './executables.js';

const root = mkdtempSync(join(tmpdir(), 'banger-exe-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A minimal 64-bit little-endian ELF with the given program header types. */
function elf(programHeaderTypes: number[]): Buffer {
  const phentsize = 56;
  const buffer = Buffer.alloc(64 + phentsize * programHeaderTypes.length);
  buffer.writeUInt32BE(0x7f454c46, 0);
  buffer[4] = 2; // ELFCLASS64
  buffer[5] = 1; // little-endian
  buffer.writeBigUInt64LE(64n, 0x20); // e_phoff
  buffer.writeUInt16LE(phentsize, 0x36);
  buffer.writeUInt16LE(programHeaderTypes.length, 0x38);
  programHeaderTypes.forEach((type, i) => buffer.writeUInt32LE(type, 64 + i * phentsize));
  return buffer;
}

test('an ELF without PT_INTERP is static; one with it is dynamic', () => {
  const staticPath = join(root, 'static');
  const dynamicPath = join(root, 'dynamic');
  writeFileSync(staticPath, elf([1, 1, 4]));
  writeFileSync(dynamicPath, elf([6, 3, 1]));
  assert.equal(isStaticElf(staticPath), true);
  assert.equal(isStaticElf(dynamicPath), false);
});

test('the node binary is dynamically linked and a script is not an ELF', () => {
  assert.equal(isStaticElf(process.execPath), false);
  assert.match(elfInterpreter(process.execPath) ?? '', /^\/lib(64)?\/ld-linux-x86-64\.so\.2$/);
  const script = join(root, 'script');
  writeFileSync(script, '#!/bin/sh\n');
  assert.equal(isStaticElf(script), false);
});

test('findExecutable searches PATH and ignores non-executables', () => {
  const bin = join(root, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'banger-tool'), '#!/bin/sh\n');
  assert.equal(findExecutable('banger-tool', { PATH: bin }), undefined);
  chmodSync(join(bin, 'banger-tool'), 0o755);
  assert.equal(findExecutable('banger-tool', { PATH: bin }), join(bin, 'banger-tool'));
  assert.equal(findExecutable(join(bin, 'banger-tool'), {}), join(bin, 'banger-tool'));
  assert.equal(findExecutable('no-such-tool-anywhere', { PATH: bin }), undefined);
});
