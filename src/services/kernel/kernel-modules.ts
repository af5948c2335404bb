import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

import { BangerError } from '../../rpc/errors.js';

/**
 * Kernel modules the guest needs, found in a kernel's module tree and ordered
 * so each loads after its dependencies. Debian's cloud kernel builds virtio,
 * virtio-net and overlayfs as modules, so banger's initramfs loads them with
 * busybox insmod (no depmod/modprobe in there), in this order.
 */

/** Loaded by the initramfs: block and net devices over virtio-mmio, overlayfs for the root. */
export const GUEST_MODULES = ['virtio_mmio', 'virtio_blk', 'virtio_net', 'overlay'] as const;

export interface KernelModule {
  name: string;
  path: string;
  depends: string[];
}

/** Module names use underscores; file names sometimes use dashes (virtio-rng.ko). */
export function moduleNameOf(file: string): string {
  return basename(file, '.ko').replaceAll('-', '_');
}

/** Reads the NUL-separated key=value strings of a .ko file's `.modinfo` ELF section. */
export function readModinfo(ko: Buffer): Map<string, string[]> {
  if (ko.readUInt32BE(0) !== 0x7f454c46 || ko[4] !== 2 || ko[5] !== 1) {
    throw new BangerError('ERR_INVALID_ARGUMENT', 'kernel module is not a 64-bit little-endian ELF');
  }
  const shoff = Number(ko.readBigUInt64LE(0x28));
  const shentsize = ko.readUInt16LE(0x3a);
  const shnum = ko.readUInt16LE(0x3c);
  const shstrndx = ko.readUInt16LE(0x3e);
  const section = (index: number): { name: number; offset: number; size: number } => {
    const base = shoff + index * shentsize;
    return { name: ko.readUInt32LE(base), offset: Number(ko.readBigUInt64LE(base + 0x18)), size: Number(ko.readBigUInt64LE(base + 0x20)) };
  };
  const names = section(shstrndx);
  const info = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameEnd = ko.indexOf(0, names.offset + s.name);
    if (ko.toString('latin1', names.offset + s.name, nameEnd) !== '.modinfo') continue;
    for (const entry of ko.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
    }
  }
  return info;
}

/** Every `*.ko` under a module tree, by module name. */
export function indexModuleTree(root: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ko')) index.set(moduleNameOf(entry.name), full);
    }
  };
  walk(root);
  return index;
}

/**
 * The wanted modules plus everything they depend on, dependencies first.
 * `dependsOf` returns a module's direct dependencies (from its modinfo).
 */
export function resolveLoadOrder(wanted: readonly string[], available: ReadonlyMap<string, string>, dependsOf: (path: string) => string[]): KernelModule[] {
  const ordered: KernelModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new BangerError('ERR_INVALID_ARGUMENT', `kernel module dependency cycle: ${[...chain, name].join(' -> ')}`);
    }
    const path = available.get(name);
    if (path === undefined) {
      throw new BangerError('ERR_INVALID_ARGUMENT', `kernel module ${name} not found${chain.length > 0 ? ` (needed by ${chain.at(-1) ?? ''})` : ''}`, {
        hint: 'the kernel must provide virtio_mmio, virtio_blk, virtio_net and overlay as modules or built in; pass --modules DIR for an imported kernel',
      });
    }
    state.set(name, 'visiting');
    const depends = dependsOf(path);
    for (const dep of depends) visit(dep, [...chain, name]);
    state.set(name, 'done');
    ordered.push({ name, path, depends });
  };
  for (const name of wanted) visit(name, []);
  return ordered;
}

/** Direct dependencies from a module's modinfo `depends=` (comma-separated, possibly empty). */
export function dependsFromModinfo(info: Map<string, string[]>): string[] {
  return (info.get('depends') ?? [])
    .flatMap((value) => value.split(','))
    .map((name) => name.trim())
    .filter((name) => name !== '');
}
