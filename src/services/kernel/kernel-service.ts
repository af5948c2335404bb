import { accessSync, constants, copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { Layout } from '../../config/paths.js';
import { buildInitramfs, initScriptHash } from '../../guest/initramfs.js';
import { findExecutable, isStaticElf } from '../../host/executables.js';
import { BangerError, hasErrnoCode } from '../../rpc/errors.js';
import { KERNEL_NAME } from '../../rpc/schemas.js';
import { mustPass } from '../../rpc/validation.js';
import type { KernelsRepo, KernelRecord, KernelSpec } from '../../store/kernels-repo.js';
import { newId, resolveRef } from '../../store/records.js';
import type { OpContext } from '../op-context.js';
import { SharedWork } from '../shared-work.js';
import { publishStaged, sweepStaging } from '../staging.js';
import { downloadPackage, exactPackage, fetchPackages, newestPackage, type ArchiveOptions } from '../debian/archive.js';
import { extractVmlinux } from './bzimage.js';
import { findCatalogKernel, KERNEL_CATALOG } from './catalog.js';
import { unpackDebData } from './deb-package.js';
import { dependsFromModinfo, GUEST_MODULES, indexModuleTree, readModinfo, resolveLoadOrder } from './kernel-modules.js';

export interface KernelServiceDeps {
  layout: Layout;
  kernels: KernelsRepo;
  /** Debian mirror from config (kernel_mirror). */
  mirror: string;
  env: NodeJS.ProcessEnv;
  /** Keyring that signs the mirror's indexes; injected by tests, defaults to Debian's archive keyring. */
  keyring?: string;
}

/** Paths of a ready kernel's files. */
export interface KernelFiles {
  dir: string;
  vmlinux: string;
  initramfs: string;
}

/**
 * Kernels: fetched from the catalog (a Debian package, verified through the
 * signed archive index) or imported from files. Either way banger keeps the
 * uncompressed vmlinux (QEMU microvm boots it directly via PVH), the guest
 * modules, and an initramfs it builds itself. Work happens in a staging dir
 * that is renamed into place and recorded in one step, so a failure or a
 * cancel leaves nothing behind, and two pulls of one name make one kernel.
 */
export class KernelService {
  readonly #deps: KernelServiceDeps;
  /**
   * Pulls in progress by name: a second pull of the same name joins the
   * first; a caller's cancel drops only that caller, and the pull stops when
   * no caller is left.
   */
  readonly #pulling = new SharedWork<KernelRecord>();

  constructor(deps: KernelServiceDeps) {
    this.#deps = deps;
  }

  list(): KernelRecord[] {
    return this.#deps.kernels.list();
  }

  /** A kernel by exact id (for references held by images); undefined when gone. */
  byId(id: string): KernelRecord | undefined {
    return this.#deps.kernels.getById(id);
  }

  find(ref: string): KernelRecord {
    return resolveRef(this.#deps.kernels.list(), ref, 'kernel');
  }

  files(kernel: KernelRecord): KernelFiles {
    const dir = join(this.#deps.layout.kernelsDir, kernel.id);
    return { dir, vmlinux: join(dir, names.KERNEL_VMLINUX), initramfs: join(dir, names.KERNEL_INITRAMFS) };
  }

  catalog(): { name: string; description: string; pulled: boolean }[] {
    return KERNEL_CATALOG.map((entry) => ({
      name: entry.name,
      description: entry.description,
      pulled: this.#deps.kernels.getByName(entry.name) !== undefined,
    }));
  }

  /** Pulls a catalog kernel; an already present one is returned as it is. */
  pull(name: string, ctx: OpContext): Promise<{ kernel: KernelRecord; pulled: boolean }> {
    const existing = this.#deps.kernels.getByName(name);
    if (existing !== undefined) return Promise.resolve({ kernel: existing, pulled: false });
    const entry = findCatalogKernel(name);
    if (entry === undefined) {
      return Promise.reject(
        new BangerError('ERR_NOT_FOUND', `no kernel named "${name}" in the catalog`, {
          hint: `catalog kernels: ${KERNEL_CATALOG.map((e) => e.name).join(', ')}; or bring your own with \`banger kernel import\``,
        }),
      );
    }
    return this.#pulling
      .run(
        name,
        ctx,
        (shared) => this.#pullFromCatalog(entry.name, entry.metaPackage, entry.sources(this.#deps.mirror), shared),
        `another pull of ${name} is in progress; waiting for it`,
      )
      .then((kernel) => ({ kernel, pulled: true }));
  }

  async #pullFromCatalog(name: string, metaPackage: string, sources: Parameters<typeof fetchPackages>[0][], ctx: OpContext): Promise<KernelRecord> {
    const downloads = (stage: string, what: string): ArchiveOptions => ({
      cacheDir: this.#deps.layout.downloadsDir,
      ...(this.#deps.keyring === undefined ? {} : { keyring: this.#deps.keyring }),
      signal: ctx.signal,
      onProgress: (p) => {
        ctx.progress(stage, what, { current: p.received, total: p.total });
      },
    });
    const options = downloads('index', 'downloading the package index');
    ctx.progress('resolve', `resolving ${metaPackage} in ${sources.map((s) => s.suite).join(', ')}`);
    const wantKernelPackages = (pkg: string): boolean => pkg === metaPackage || pkg.startsWith('linux-image-');
    const indexes = [];
    for (const source of sources) indexes.push({ source, stanzas: await fetchPackages(source, options, wantKernelPackages) });
    const meta = newestPackage(indexes, metaPackage);
    if (meta === undefined) throw new BangerError('ERR_NOT_FOUND', `${metaPackage} is not in ${sources.map((s) => `${s.base} ${s.suite}`).join(' or ')}`);
    const dependency = /^(linux-image-[^\s(,]+)\s*\(=\s*([^)]+)\)/.exec(meta.depends);
    if (dependency?.[1] === undefined || dependency[2] === undefined) {
      throw new BangerError('ERR_NOT_FOUND', `${metaPackage} ${meta.version} does not depend on a kernel image (Depends: ${meta.depends})`);
    }
    const imageName = dependency[1];
    const imageVersion = dependency[2].trim();
    const index = indexes.find((i) => i.source === meta.source);
    const record = index === undefined ? undefined : exactPackage(meta.source, index.stanzas, imageName, imageVersion);
    if (record === undefined) throw new BangerError('ERR_NOT_FOUND', `${imageName} ${imageVersion} is not in ${meta.source.suite}`);
    const what = `downloading ${imageName} ${imageVersion}`;
    ctx.progress('download', what, { current: 0, total: record.size });
    const deb = await downloadPackage(record, downloads('download', what));

    return this.#publish(name, 'catalog', record.version, ctx, async (staging) => {
      ctx.progress('unpack', `unpacking ${imageName}`);
      const unpacked = join(staging, 'unpacked');
      await unpackDebData(deb, unpacked, ['./boot/vmlinuz-*', './lib/modules/*'], ctx.signal);
      const vmlinuz = readdirSync(join(unpacked, 'boot')).find((f) => f.startsWith('vmlinuz-'));
      if (vmlinuz === undefined) throw new BangerError('ERR_INVALID_ARGUMENT', `${imageName} contains no /boot/vmlinuz-*`);
      const release = vmlinuz.slice('vmlinuz-'.length);
      const spec = await this.#assemble(staging, join(unpacked, 'boot', vmlinuz), join(unpacked, 'lib', 'modules', release), ctx);
      rmSync(unpacked, { recursive: true, force: true });
      return {
        ...spec,
        release,
        package: { name: imageName, version: record.version, sha256: record.sha256, url: `${record.source.base}/${record.filename}` },
      };
    });
  }

  /** Imports a kernel from files: a bzImage or vmlinux, and optionally its module tree. */
  async import(name: string, kernelPath: string, modulesDir: string | undefined, ctx: OpContext): Promise<KernelRecord> {
    mustPass(KERNEL_NAME.check(name), 'kernel name');
    if (this.#deps.kernels.getByName(name) !== undefined) {
      throw new BangerError('ERR_ALREADY_EXISTS', `a kernel named "${name}" already exists`, {
        hint: `delete it first with \`banger kernel delete ${name}\`, or pick another name`,
      });
    }
    // Checked before anything is read or created: a directory would fail as EISDIR deep in the
    // build (ERR_INTERNAL), and a device such as /dev/zero would be read until memory runs out.
    checkImportPath(kernelPath, 'file', 'the kernel image', 'pass the kernel file itself (a bzImage or vmlinux), e.g. /boot/vmlinuz-<release>');
    if (modulesDir !== undefined)
      checkImportPath(modulesDir, 'directory', 'the module tree', "pass the kernel's module directory, e.g. /lib/modules/<release>");
    return this.#publish(name, 'import', null, ctx, (staging) => this.#assemble(staging, kernelPath, modulesDir, ctx));
  }

  /**
   * Writes vmlinux, the guest modules and the initramfs into `staging`. With no
   * module tree the initramfs loads no modules (the kernel must have the
   * drivers built in).
   */
  async #assemble(staging: string, kernelImage: string, moduleTree: string | undefined, ctx: OpContext): Promise<KernelSpec> {
    ctx.progress('vmlinux', 'extracting vmlinux from the kernel image');
    writeFileSync(join(staging, names.KERNEL_VMLINUX), extractVmlinux(readFileSync(kernelImage)));
    await Promise.resolve();
    ctx.signal.throwIfAborted();

    const modules =
      moduleTree === undefined
        ? []
        : resolveLoadOrder(GUEST_MODULES, indexModuleTree(moduleTree), (path) => dependsFromModinfo(readModinfo(readFileSync(path))));
    const modulesDir = join(staging, names.KERNEL_MODULES_DIR);
    mkdirSync(modulesDir);
    for (const module of modules) copyFileSync(module.path, join(modulesDir, `${module.name}.ko`));

    ctx.progress('initramfs', `building the initramfs (${modules.length} modules)`);
    const moduleNames = modules.map((m) => m.name);
    this.#writeInitramfs(staging, moduleNames);
    return { modules: moduleNames, initHash: initScriptHash() };
  }

  #writeInitramfs(dir: string, modules: readonly string[]): void {
    const modulesDir = join(dir, names.KERNEL_MODULES_DIR);
    const initramfs = buildInitramfs({
      busybox: readFileSync(staticBusybox(this.#deps.env)),
      modules: modules.map((name) => ({ name, data: readFileSync(join(modulesDir, `${name}.ko`)) })),
    });
    const target = join(dir, names.KERNEL_INITRAMFS);
    writeFileSync(`${target}.new`, initramfs);
    renameSync(`${target}.new`, target);
  }

  /**
   * Rebuilds a kernel's initramfs when banger's init script changed since it
   * was built (after an upgrade), so every VM boots with the current init.
   */
  ensureCurrentInitramfs(kernel: KernelRecord, ctx: OpContext): KernelRecord {
    if (kernel.spec.initHash === initScriptHash()) return kernel;
    ctx.progress('initramfs', `rebuilding the initramfs of ${kernel.name} for this banger`);
    this.#writeInitramfs(this.files(kernel).dir, kernel.spec.modules);
    const spec = { ...kernel.spec, initHash: initScriptHash() };
    this.#deps.kernels.updateSpec(kernel.id, spec);
    return { ...kernel, spec };
  }

  /**
   * Runs `build` in a fresh staging dir, then renames it into place and
   * records the kernel. Any failure (or cancel) removes the staging dir; a
   * name taken meanwhile by another import is refused at the record step.
   */
  #publish(
    name: string,
    source: KernelRecord['source'],
    version: string | null,
    ctx: OpContext,
    build: (staging: string) => Promise<KernelSpec>,
  ): Promise<KernelRecord> {
    const id = newId();
    return publishStaged(
      this.#deps.layout.kernelsDir,
      id,
      build,
      (_final, spec) => {
        if (this.#deps.kernels.getByName(name) !== undefined) {
          throw new BangerError('ERR_ALREADY_EXISTS', `a kernel named "${name}" was added while this one was being prepared`);
        }
        const kernel = this.#deps.kernels.insert({ id, name, state: 'ready', source, version, spec });
        ctx.log.info({ kernel: name, id }, 'kernel published');
        return kernel;
      },
      ctx.signal,
    );
  }

  /** Deletes a kernel; refused while an image uses it. */
  delete(ref: string): KernelRecord {
    const kernel = this.find(ref);
    const users = this.#deps.kernels.imagesUsing(kernel.id);
    if (users.length > 0) {
      throw new BangerError('ERR_IN_USE', `kernel ${kernel.name} is used by image${users.length > 1 ? 's' : ''} ${users.join(', ')}`, {
        hint: 'delete those images first',
      });
    }
    this.#deps.kernels.delete(kernel.id);
    rmSync(this.files(kernel).dir, { recursive: true, force: true });
    return kernel;
  }

  /** Removes staging dirs left by a daemon that died mid-pull. */
  sweepStaging(): void {
    sweepStaging(this.#deps.layout.kernelsDir);
  }
}

/**
 * Refuses an import path that does not exist (ERR_NOT_FOUND), is not a
 * `kind` or cannot be read by the daemon (ERR_INVALID_ARGUMENT). Symlinks
 * are followed: /boot/vmlinuz is often one.
 */
function checkImportPath(path: string, kind: 'file' | 'directory', what: string, hint: string): void {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT') || hasErrnoCode(error, 'ENOTDIR')) {
      throw new BangerError('ERR_NOT_FOUND', `${path} does not exist`, { hint: 'paths are read by the daemon; pass absolute paths' });
    }
    throw unreadable(path, what, error);
  }
  const isKind = kind === 'file' ? stats.isFile() : stats.isDirectory();
  if (!isKind)
    throw new BangerError('ERR_INVALID_ARGUMENT', `${path} (${what}) is ${describeKind(stats)}, not a ${kind === 'file' ? 'regular file' : 'directory'}`, {
      hint,
    });
  try {
    accessSync(path, kind === 'file' ? constants.R_OK : constants.R_OK | constants.X_OK);
  } catch (error) {
    throw unreadable(path, what, error);
  }
}

function unreadable(path: string, what: string, cause: unknown): BangerError {
  return new BangerError('ERR_INVALID_ARGUMENT', `${path} (${what}) cannot be read by the daemon`, {
    hint: 'the daemon runs as you: check its permissions',
    cause,
  });
}

function describeKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFile()) return 'a regular file';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isFIFO()) return 'a pipe';
  if (stats.isSocket()) return 'a socket';
  return 'an unusual file';
}

/** The host's busybox, which must be statically linked to run inside the initramfs. */
function staticBusybox(env: NodeJS.ProcessEnv): string {
  const path = findExecutable('busybox', env);
  if (path === undefined || !isStaticElf(path)) {
    throw new BangerError('ERR_HOST_TOOL_MISSING', path === undefined ? 'busybox is not installed' : `${path} is not statically linked`, {
      hint: 'apt-get install busybox-static',
    });
  }
  return path;
}
