import { accessSync, constants, copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { Layout } from '../../config/paths.js';
import { buildInitramfs, initScriptHash } from '../../guest/initramfs.js';
import { findExecutable, isStaticElf } from '../../host/executables.js';
import { BangerError, hasErrnoCode } from '../../rpc/errors.js';
import type { BundleFileInfo } from '../../rpc/methods.js';
import { BUNDLE_FILE, BUNDLE_SOURCE, isUrlLike, KERNEL_NAME } from '../../rpc/schemas.js';
import { describeValue, mustPass } from '../../rpc/validation.js';
import type { KernelsRepo, KernelRecord, KernelSpec } from '../../store/kernels-repo.js';
import { newId, resolveRef } from '../../store/records.js';
import type { OpContext } from '../op-context.js';
import { SharedWork } from '../shared-work.js';
import { publishStaged, sweepStaging } from '../staging.js';
import { downloadPackage, exactPackage, fetchPackages, newestPackage, type ArchiveOptions } from '../debian/archive.js';
import { checkBundleFile, downloadBundle, writeBundle } from '../image/bundle.js';
import { extractVmlinux } from './bzimage.js';
import { KERNEL_CATALOG, type KernelCatalogEntry } from './catalog.js';
import { kernelBundleManifest, kernelBundleMembers, unpackKernelBundle } from './kernel-bundle.js';
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
  /** Injected by tests; defaults to the embedded catalog. */
  catalog?: readonly KernelCatalogEntry[];
}

/** Name of a downloaded bundle inside a pull's staging dir; removed once unpacked. */
const DOWNLOADED_BUNDLE = 'bundle.tar.zst';

/** Where a kernel bundle comes from. */
type BundleOrigin = { kind: 'url'; url: string; sha256: string } | { kind: 'file'; path: string; sha256: string | undefined };

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
  /** Pulls of bundles given by path or URL, by everything the request said (so only identical ones join). */
  readonly #bundlePulls = new SharedWork<KernelRecord>();
  readonly #catalog: readonly KernelCatalogEntry[];

  constructor(deps: KernelServiceDeps) {
    this.#deps = deps;
    this.#catalog = deps.catalog ?? KERNEL_CATALOG;
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

  /** A kernel by exactly this name (what a bundle names its kernel by: never a prefix of another); undefined when none. */
  byName(name: string): KernelRecord | undefined {
    return this.#deps.kernels.getByName(name);
  }

  files(kernel: KernelRecord): KernelFiles {
    const dir = join(this.#deps.layout.kernelsDir, kernel.id);
    return { dir, vmlinux: join(dir, names.KERNEL_VMLINUX), initramfs: join(dir, names.KERNEL_INITRAMFS) };
  }

  catalog(): { name: string; description: string; pulled: boolean }[] {
    return this.#catalog.map((entry) => ({
      name: entry.name,
      description: entry.description,
      pulled: this.#deps.kernels.getByName(entry.name) !== undefined,
    }));
  }

  /**
   * Pulls a catalog kernel (from Debian's archive, or downloaded when the
   * entry is a bundle); an already present one is returned as it is.
   */
  pull(name: string, ctx: OpContext): Promise<{ kernel: KernelRecord; pulled: boolean }> {
    const existing = this.#deps.kernels.getByName(name);
    if (existing !== undefined) return Promise.resolve({ kernel: existing, pulled: false });
    const entry = this.#catalog.find((e) => e.name === name);
    if (entry === undefined) {
      return Promise.reject(
        new BangerError('ERR_NOT_FOUND', `no kernel named "${name}" in the catalog`, {
          hint: `catalog kernels: ${this.#catalog.map((e) => e.name).join(', ')}; or bring your own with \`banger kernel import\` or a kernel bundle`,
        }),
      );
    }
    const { bundle } = entry;
    return this.#pulling
      .run(
        name,
        ctx,
        (shared) =>
          bundle === undefined
            ? this.#pullFromCatalog(entry.name, entry.metaPackage, entry.sources(this.#deps.mirror), shared)
            : this.#publishBundle({ kind: 'url', ...bundle }, entry.name, 'catalog', shared),
        `another pull of ${name} is in progress; waiting for it`,
      )
      .then((kernel) => ({ kernel, pulled: true }));
  }

  /**
   * Pulls a kernel bundle given by absolute path or http(s) URL (a URL needs
   * its sha256; a file's is checked when given), named `name` or as its
   * manifest says. What can be refused before any download is refused first.
   */
  async pullBundle(source: string, options: { name?: string | undefined; sha256?: string | undefined }, ctx: OpContext): Promise<KernelRecord> {
    mustPass(BUNDLE_SOURCE.check(source), 'bundle');
    let origin: BundleOrigin;
    if (isUrlLike(source)) {
      if (options.sha256 === undefined) {
        throw new BangerError('ERR_INVALID_ARGUMENT', 'pulling a bundle from a URL needs its sha256', {
          hint: 'pass --sha256 <hex>: `banger kernel export` printed it where the bundle was made (or run sha256sum on the file)',
        });
      }
      origin = { kind: 'url', url: source, sha256: options.sha256 };
    } else {
      await checkBundleFile(source, undefined);
      origin = { kind: 'file', path: source, sha256: options.sha256 };
    }
    if (options.name !== undefined) {
      mustPass(KERNEL_NAME.check(options.name), 'kernel name');
      this.#assertNameFree(options.name);
    }
    staticBusybox(this.#deps.env); // the initramfs is built from it: fail before downloading
    const key = JSON.stringify([source, options.name ?? null, options.sha256 ?? null]);
    return this.#bundlePulls.run(
      key,
      ctx,
      (shared) => this.#publishBundle(origin, options.name, 'import', shared),
      `another pull of ${source} is in progress; waiting for it`,
    );
  }

  /**
   * Fetches (or checks) a kernel bundle, unpacks vmlinux and the modules into
   * a staging dir, builds banger's initramfs for them, and publishes it with
   * its record: all of it or nothing. The name is settled as soon as the
   * manifest is read.
   */
  #publishBundle(origin: BundleOrigin, fixedName: string | undefined, source: KernelRecord['source'], ctx: OpContext): Promise<KernelRecord> {
    const id = newId();
    return publishStaged(
      this.#deps.layout.kernelsDir,
      id,
      async (staging) => {
        let file: string;
        if (origin.kind === 'url') {
          file = join(staging, DOWNLOADED_BUNDLE);
          const what = `downloading ${origin.url}`;
          ctx.progress('download', what);
          await downloadBundle(origin.url, file, origin.sha256, {
            signal: ctx.signal,
            onProgress: (done, total) => {
              ctx.progress('download', what, { current: done, total });
            },
          });
        } else {
          file = origin.path;
          if (origin.sha256 !== undefined) ctx.progress('verify', `checking the sha256 of ${file}`);
          await checkBundleFile(file, origin.sha256);
        }
        let name = fixedName;
        ctx.progress('unpack', 'unpacking the bundle');
        const manifest = await unpackKernelBundle(file, staging, {
          signal: ctx.signal,
          onManifest: (m) => {
            if (name === undefined) {
              if (!KERNEL_NAME.check(m.name).ok) {
                throw new BangerError('ERR_INVALID_ARGUMENT', `the bundle's name ${describeValue(m.name)} is not a valid kernel name`, {
                  hint: 'pass --name to call the kernel something else',
                });
              }
              this.#assertNameFree(m.name);
              name = m.name;
            }
          },
        });
        if (file.startsWith(staging)) rmSync(file, { force: true });
        ctx.progress('initramfs', `building the initramfs (${manifest.modules.length} modules)`);
        this.#writeInitramfs(staging, manifest.modules);
        if (name === undefined) throw new Error('the bundle was unpacked without its manifest being settled');
        const spec: KernelSpec = {
          modules: manifest.modules,
          initHash: initScriptHash(),
          ...(manifest.release === null ? {} : { release: manifest.release }),
          ...(manifest.package === undefined ? {} : { package: manifest.package }),
        };
        return { name, version: manifest.kernelVersion, spec };
      },
      (_final, built) => {
        if (this.#deps.kernels.getByName(built.name) !== undefined) {
          throw new BangerError('ERR_ALREADY_EXISTS', `a kernel named "${built.name}" was added while this one was being pulled`);
        }
        const kernel = this.#deps.kernels.insert({ id, name: built.name, state: 'ready', source, version: built.version, spec: built.spec });
        ctx.log.info({ kernel: built.name, id, bundle: origin.kind === 'url' ? origin.url : origin.path }, 'kernel published');
        return kernel;
      },
      ctx.signal,
    );
  }

  #assertNameFree(name: string): void {
    if (this.#deps.kernels.getByName(name) !== undefined) {
      throw new BangerError('ERR_ALREADY_EXISTS', `a kernel named "${name}" already exists`, {
        hint: `pass --name to pull the bundle under another name, or delete ${name} first`,
      });
    }
  }

  /**
   * Writes the kernel as a bundle at `path` (see kernel-bundle.ts): vmlinux,
   * its modules and a manifest, that `kernel pull` takes back on any host.
   */
  async export(ref: string, path: string, options: { force: boolean }, ctx: OpContext): Promise<BundleFileInfo & { kernel: KernelRecord }> {
    mustPass(BUNDLE_FILE.check(path), 'bundle path');
    const kernel = this.find(ref);
    const what = `writing ${kernel.name} to ${path}`;
    ctx.progress('export', what);
    const written = await writeBundle(path, kernelBundleManifest(kernel), kernelBundleMembers(this.files(kernel).dir, kernel.spec.modules), {
      force: options.force,
      signal: ctx.signal,
      onProgress: (done, total) => {
        ctx.progress('export', what, { current: done, total });
      },
    });
    ctx.log.info({ kernel: kernel.name, path, sha256: written.sha256, bytes: written.sizeBytes }, 'kernel exported');
    return { ...written, kernel };
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
