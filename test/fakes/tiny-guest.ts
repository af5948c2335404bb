import { writeFileSync } from 'node:fs';

/**
 * A guest "kernel" for real-QEMU tests that need guest output without
 * booting Linux: a 64-bit ELF with a Xen PVH entry note (what QEMU microvm's
 * `-kernel` loads, as it does banger's extracted vmlinux) whose very first
 * instructions write `text` to the serial port COM1 (0x3f8) and then halt
 * for good. So every byte of `text` is output the guest produced before it
 * did anything else: a test sees whether the start of a boot was kept.
 *
 * Layout, loaded whole at 1 MiB: ELF header (64 bytes), two program headers
 * (PT_LOAD of the file, PT_NOTE), the note (name "Xen", type 18 =
 * XEN_ELFNOTE_PHYS32_ENTRY, the 32-bit entry address as a 64-bit value), the
 * code at CODE_OFFSET, the text after it. PVH enters in 32-bit protected
 * mode with flat segments, so the code is:
 *   mov esi, text; mov ecx, length; mov dx, 0x3f8; rep outsb; cli; hlt; jmp hlt
 */

const LOAD_ADDRESS = 0x100000;
const NOTE_OFFSET = 176;
const CODE_OFFSET = 208;
const TEXT_OFFSET = CODE_OFFSET + 32;

export function writeTinyGuest(path: string, text: string): void {
  const message = Buffer.from(text);
  const file = Buffer.alloc(TEXT_OFFSET + message.length);
  // ELF header: 64-bit, little-endian, executable, x86-64.
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(file, 0);
  file.writeUInt16LE(2, 16); // ET_EXEC
  file.writeUInt16LE(62, 18); // EM_X86_64
  file.writeUInt32LE(1, 20); // EV_CURRENT
  file.writeBigUInt64LE(BigInt(LOAD_ADDRESS + CODE_OFFSET), 24); // e_entry (PVH uses the note's)
  file.writeBigUInt64LE(64n, 32); // e_phoff
  file.writeUInt16LE(64, 52); // e_ehsize
  file.writeUInt16LE(56, 54); // e_phentsize
  file.writeUInt16LE(2, 56); // e_phnum
  file.writeUInt16LE(64, 58); // e_shentsize
  const programHeader = (at: number, type: number, flags: number, offset: number, size: number, align: number): void => {
    file.writeUInt32LE(type, at);
    file.writeUInt32LE(flags, at + 4);
    file.writeBigUInt64LE(BigInt(offset), at + 8);
    file.writeBigUInt64LE(BigInt(LOAD_ADDRESS + offset), at + 16); // p_vaddr
    file.writeBigUInt64LE(BigInt(LOAD_ADDRESS + offset), at + 24); // p_paddr
    file.writeBigUInt64LE(BigInt(size), at + 32); // p_filesz
    file.writeBigUInt64LE(BigInt(size), at + 40); // p_memsz
    file.writeBigUInt64LE(BigInt(align), at + 48);
  };
  programHeader(64, 1, 7, 0, file.length, 0x1000); // PT_LOAD, rwx
  programHeader(120, 4, 4, NOTE_OFFSET, 24, 4); // PT_NOTE
  file.writeUInt32LE(4, NOTE_OFFSET); // n_namesz
  file.writeUInt32LE(8, NOTE_OFFSET + 4); // n_descsz
  file.writeUInt32LE(18, NOTE_OFFSET + 8); // XEN_ELFNOTE_PHYS32_ENTRY
  Buffer.from('Xen\0').copy(file, NOTE_OFFSET + 12);
  file.writeBigUInt64LE(BigInt(LOAD_ADDRESS + CODE_OFFSET), NOTE_OFFSET + 16);
  const u32 = (value: number): number[] => [value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, (value >>> 24) & 0xff];
  const code = [
    ...[0xbe, ...u32(LOAD_ADDRESS + TEXT_OFFSET)], // mov esi, text
    ...[0xb9, ...u32(message.length)], // mov ecx, length
    ...[0x66, 0xba, 0xf8, 0x03], // mov dx, 0x3f8
    ...[0xf3, 0x6e], // rep outsb
    ...[0xfa, 0xf4, 0xeb, 0xfd], // cli; hlt; jmp back to hlt
  ];
  Buffer.from(code).copy(file, CODE_OFFSET);
  message.copy(file, TEXT_OFFSET);
  writeFileSync(path, file);
}
