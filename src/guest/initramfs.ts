import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { buildCpio, type CpioEntry } from './cpio-newc.js';

/**
 * banger's initramfs for a kernel: a static busybox, the kernel's guest
 * modules in load order, and banger's init (initramfs-init.sh), which
 * assembles the overlay root and switches to the guest's init.
 */

const INIT_SCRIPT = new URL('./initramfs-init.sh', import.meta.url);

export function initScript(): Buffer {
  return readFileSync(INIT_SCRIPT);
}

/** Identifies the init an initramfs was built with, so a stale one can be rebuilt after an upgrade. */
export function initScriptHash(): string {
  return createHash('sha256').update(initScript()).digest('hex').slice(0, 16);
}

export interface InitramfsInputs {
  /** A statically linked busybox (there is no dynamic loader in the initramfs). */
  busybox: Buffer;
  /** Modules to load, dependencies first. */
  modules: readonly { name: string; data: Buffer }[];
}

export function buildInitramfs(inputs: InitramfsInputs): Buffer {
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'etc', 'etc/banger', 'lib', 'lib/modules', 'proc', 'sys', 'lower', 'upper', 'newroot'].map((path): CpioEntry => ({ type: 'dir', path })),
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { type: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
    { type: 'file', path: 'bin/busybox', data: inputs.busybox, mode: 0o755 },
    { type: 'file', path: 'init', data: initScript(), mode: 0o755 },
    { type: 'file', path: 'etc/banger/modules', data: Buffer.from(inputs.modules.map((m) => m.name).join('\n') + '\n') },
    ...inputs.modules.map((m): CpioEntry => ({ type: 'file', path: `lib/modules/${m.name}.ko`, data: m.data })),
  ];
  return buildCpio(entries);
}
