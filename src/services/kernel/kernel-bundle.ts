import { closeSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import { describeValue } from '../../rpc/validation.js';
import type { KernelRecord, KernelSpec } from '../../store/kernels-repo.js';
import {
  BUNDLE_VERSION,
  invalidBundle,
  manifestFields,
  manifestString,
  optionalManifestString,
  unpackBundle,
  type BundleProgress,
  type PackMember,
} from '../image/bundle.js';

/**
 * Kernel bundles (the container format is services/image/bundle.ts): a
 * kernel as `kernel export` writes it and `kernel pull <file>.tar.zst` takes
 * it back. It carries what a kernel's directory holds that banger cannot make
 * itself: `vmlinux` and the guest modules (`modules/<name>.ko`, in the load
 * order the manifest lists). The initramfs is not carried: banger builds its
 * own from the modules on the receiving host (with that host's banger init),
 * as for every kernel, so a bundle never brings an init of its own.
 */

export const KERNEL_BUNDLE_FORMAT = 'banger-kernel';
const LABEL = 'kernel bundle';
/** Module names as kernels name their .ko files. */
const MODULE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_MODULES = 256;

export interface KernelBundleManifest {
  format: typeof KERNEL_BUNDLE_FORMAT;
  version: number;
  /** The kernel's name where it was exported (a pull keeps it unless told another). */
  name: string;
  /** `uname -r`, when known. */
  release: string | null;
  /** The package version of a catalog kernel, null for imports. */
  kernelVersion: string | null;
  /** Modules the initramfs loads, in load order; each is the member `modules/<name>.ko`. */
  modules: string[];
  /** The Debian package a catalog kernel came from (shown by `kernel show`; not re-checked). */
  package?: NonNullable<KernelSpec['package']>;
}

export function kernelBundleManifest(kernel: KernelRecord): KernelBundleManifest {
  return {
    format: KERNEL_BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    name: kernel.name,
    release: kernel.spec.release ?? null,
    kernelVersion: kernel.version,
    modules: [...kernel.spec.modules],
    ...(kernel.spec.package === undefined ? {} : { package: kernel.spec.package }),
  };
}

/** The bundle's files, read from a kernel's directory: vmlinux, then each module. */
export function kernelBundleMembers(dir: string, modules: readonly string[]): PackMember[] {
  return [
    { name: names.KERNEL_VMLINUX, path: join(dir, names.KERNEL_VMLINUX) },
    ...modules.map((module) => ({ name: moduleMember(module), path: join(dir, names.KERNEL_MODULES_DIR, `${module}.ko`) })),
  ];
}

function moduleMember(module: string): string {
  return `${names.KERNEL_MODULES_DIR}/${module}.ko`;
}

/** A kernel bundle's manifest, checked field by field (it is untrusted). */
export function parseKernelManifest(value: unknown): KernelBundleManifest {
  const fields = manifestFields(value, KERNEL_BUNDLE_FORMAT, LABEL);
  const name = manifestString(fields, 'name', LABEL);
  const release = optionalManifestString(fields, 'release', LABEL);
  const kernelVersion = optionalManifestString(fields, 'kernelVersion', LABEL);
  const modules = fields.modules;
  if (!Array.isArray(modules) || modules.length > MAX_MODULES) throw invalidBundle(LABEL, `its modules is not a list of at most ${MAX_MODULES} names`);
  for (const module of modules as unknown[]) {
    if (typeof module !== 'string' || !MODULE_NAME.test(module)) throw invalidBundle(LABEL, `its module ${describeValue(module)} is not a module name`);
  }
  if (new Set(modules).size !== modules.length) throw invalidBundle(LABEL, 'its modules list a module twice');
  const pkg = fields.package === undefined || fields.package === null ? undefined : parsePackage(fields.package);
  return {
    format: KERNEL_BUNDLE_FORMAT,
    version: fields.version as number,
    name,
    release,
    kernelVersion,
    modules: modules as string[],
    ...(pkg === undefined ? {} : { package: pkg }),
  };
}

function parsePackage(value: unknown): NonNullable<KernelSpec['package']> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidBundle(LABEL, 'its package is not an object');
  const fields = value as Record<string, unknown>;
  return {
    name: manifestString(fields, 'name', LABEL),
    version: manifestString(fields, 'version', LABEL),
    sha256: manifestString(fields, 'sha256', LABEL),
    url: manifestString(fields, 'url', LABEL, 2048),
  };
}

/**
 * Unpacks a kernel bundle into `dir`: vmlinux (which must be an ELF file:
 * QEMU boots it directly) and `modules/<name>.ko` for every module the
 * manifest lists, nothing else. The manifest, checked, goes to `onManifest`
 * before any file is written. Nothing is left in `dir` on failure.
 */
export async function unpackKernelBundle(
  file: string,
  dir: string,
  options: BundleProgress & { onManifest?: (manifest: KernelBundleManifest) => Promise<void> | void },
): Promise<KernelBundleManifest> {
  let manifest: KernelBundleManifest | undefined;
  const modulesDir = join(dir, names.KERNEL_MODULES_DIR);
  mkdirSync(modulesDir);
  try {
    await unpackBundle(
      file,
      dir,
      {
        label: LABEL,
        onManifest: async (value) => {
          manifest = parseKernelManifest(value);
          await options.onManifest?.(manifest);
        },
        target: (name) => (name === names.KERNEL_VMLINUX || expectedModules(manifest).includes(name) ? name : undefined),
        required: () => [names.KERNEL_VMLINUX, ...expectedModules(manifest)],
      },
      options,
    );
    if (manifest === undefined) throw new Error('unpackBundle returned without reading the manifest');
    const vmlinux = join(dir, names.KERNEL_VMLINUX);
    if (!isElf(vmlinux)) {
      rmSync(vmlinux, { force: true });
      for (const module of manifest.modules) rmSync(join(dir, moduleMember(module)), { force: true });
      throw invalidBundle(LABEL, `its ${names.KERNEL_VMLINUX} is not an ELF kernel image`);
    }
    return manifest;
  } catch (error) {
    rmSync(modulesDir, { recursive: true, force: true });
    throw error;
  }
}

function expectedModules(manifest: KernelBundleManifest | undefined): string[] {
  return (manifest?.modules ?? []).map(moduleMember);
}

function isElf(path: string): boolean {
  const magic = Buffer.alloc(4);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, magic, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  return magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
}
