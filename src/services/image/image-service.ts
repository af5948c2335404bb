import { closeSync, existsSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { Layout } from '../../config/paths.js';
import { BangerError } from '../../rpc/errors.js';
import type { BundleFileInfo } from '../../rpc/methods.js';
import { BUNDLE_FILE, BUNDLE_SOURCE, IMAGE_NAME, isBundleSource, isUrlLike } from '../../rpc/schemas.js';
import { describeValue, mustPass } from '../../rpc/validation.js';
import type { ImageRecord, ImagesRepo, ImageSpec } from '../../store/images-repo.js';
import { newId, resolveRef } from '../../store/records.js';
import type { KernelService } from '../kernel/kernel-service.js';
import type { OpContext } from '../op-context.js';
import { SharedWork } from '../shared-work.js';
import { publishStaged, sweepStaging } from '../staging.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import { resolveBuildHost, type BuildHost } from './build-namespace.js';
import { checkBundleFile, downloadBundle, imageBundleManifest, unpackImageBundle, writeBundle, type ImageBundleManifest } from './bundle.js';
import { IMAGE_CATALOG, type ImageCatalogEntry } from './catalog.js';
import { packExt4 } from './ext4-pack.js';
import { buildDebianRoot } from './rootfs-builder.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { looksLikeReference, RegistryImages, type PullOptions, type RegistryImagesDeps } from './registry-images.js';

/**
 * Builds a catalog image's root filesystem into the tarball `target`, owners
 * as numbers (the real one runs mmdebstrap).
 */
export type RootBuilder = (entry: ImageCatalogEntry, target: string, host: BuildHost, ctx: OpContext) => Promise<void>;

/** Name of the root tarball inside a pull's staging dir; removed once packed. */
const ROOT_TARBALL = 'rootfs.tar';
/** Name of a downloaded bundle inside a pull's staging dir; removed once unpacked. */
const DOWNLOADED_BUNDLE = 'bundle.tar.zst';

export interface ImagePullOptions extends PullOptions {
  /** sha256 (hex) a bundle must have: required for a URL, checked for a file when given. */
  sha256?: string | undefined;
}

/** Where a bundle pull's file comes from. */
type BundleOrigin = { kind: 'url'; url: string; sha256: string } | { kind: 'file'; path: string; sha256: string | undefined };

/** What a bundle pull publishes. */
interface BundlePlan {
  origin: BundleOrigin;
  /** The image's name: fixed (catalog entry, --name), or undefined for the manifest's. */
  name: string | undefined;
  source: ImageRecord['source'];
  /** The kernel resolved before the download (catalog entry, --kernel), or undefined for the manifest's kernel_ref. */
  kernel: { id: string } | undefined;
}

export interface ImageServiceDeps {
  layout: Layout;
  images: ImagesRepo;
  kernels: KernelService;
  mirror: string;
  /** Injected by tests; defaults to mmdebstrap from the configured mirror. */
  buildRoot?: RootBuilder;
  /** Injected by tests; defaults to the embedded catalog. */
  catalog?: readonly ImageCatalogEntry[];
  /** Registry pulls: credentials, insecure registries, the SSH server bundle. */
  registry: Omit<RegistryImagesDeps, 'layout' | 'images' | 'kernels'>;
}

const EXT4_MAGIC_OFFSET = 1024 + 0x38;

/**
 * Images: a read-only ext4 root shared by every VM made from it, plus the
 * kernel it boots with. Pulled from the catalog (built on the host, or
 * downloaded when the entry is a bundle), from a registry
 * (registry-images.ts), or from a bundle file or URL (bundle.ts; `export`
 * writes one), or registered from a file (left in place until promoted into
 * banger's directory). Like kernels, pulls build in a staging dir and publish by
 * rename + record: nothing half-built is ever visible, a failure leaves
 * nothing behind, pulls of different names run side by side, and pulls of
 * one name join.
 */
export class ImageService {
  readonly #deps: ImageServiceDeps;
  readonly #catalog: readonly ImageCatalogEntry[];
  /** Pulls in progress by name (see SharedWork: joiners, per-caller cancel). */
  readonly #pulling = new SharedWork<ImageRecord>();
  /** Pulls of bundles given by path or URL, by everything the request said (so only identical ones join). */
  readonly #bundlePulls = new SharedWork<ImageRecord>();
  readonly #registry: RegistryImages;

  constructor(deps: ImageServiceDeps) {
    this.#deps = deps;
    this.#catalog = deps.catalog ?? IMAGE_CATALOG;
    this.#registry = new RegistryImages({ ...deps.registry, layout: deps.layout, images: deps.images, kernels: deps.kernels });
  }

  list(): ImageRecord[] {
    return this.#deps.images.list();
  }

  /** An image by exact id (for references held by VMs); undefined when gone. */
  byId(id: string): ImageRecord | undefined {
    return this.#deps.images.getById(id);
  }

  find(ref: string): ImageRecord {
    return resolveRef(this.#deps.images.list(), ref, 'image');
  }

  dir(image: ImageRecord): string {
    return join(this.#deps.layout.imagesDir, image.id);
  }

  catalog(): { name: string; description: string; kernel: string; pulled: boolean }[] {
    return this.#catalog.map((e) => ({
      name: e.name,
      description: e.description,
      kernel: e.kernel,
      pulled: this.#deps.images.getByName(e.name) !== undefined,
    }));
  }

  /** Whether `name` can be pulled (vm create auto-pulls catalog images). */
  inCatalog(name: string): boolean {
    return this.#catalog.some((e) => e.name === name);
  }

  /**
   * Pulls an image: a catalog name (built on this host, or downloaded when
   * the entry is a bundle), an image already here by name (a registry image
   * is checked for a newer digest), a registry reference (`debian:bookworm`,
   * `localhost:5000/team/dev:1`), or a bundle by absolute path or http(s) URL.
   */
  async pull(source: string, ctx: OpContext, options: ImagePullOptions = {}): Promise<{ image: ImageRecord; pulled: boolean }> {
    if (isBundleSource(source)) return { image: await this.#pullBundleSource(source, options, ctx), pulled: true };
    if (options.sha256 !== undefined) {
      throw new BangerError('ERR_INVALID_ARGUMENT', '--sha256 is for bundles given by path or URL', {
        hint: 'catalog bundles are pinned by the catalog, and registry images by their digest (name@sha256:<digest>)',
      });
    }
    const existing = this.#deps.images.getByName(source);
    if (existing?.source === 'registry' && existing.spec.oci !== undefined && options.name === undefined) {
      return await this.#registry.pull(parseReference(existing.spec.oci.ref), { ...options, name: existing.name }, ctx);
    }
    if (existing !== undefined) return { image: existing, pulled: false };
    const entry = this.#catalog.find((e) => e.name === source);
    if (entry !== undefined) {
      const { bundle } = entry;
      const image = await this.#pulling.run(
        source,
        ctx,
        (shared) => (bundle === undefined ? this.#pullFromCatalog(entry, shared) : this.#pullCatalogBundle(entry, bundle, options.kernel, shared)),
        `another pull of ${source} is in progress; waiting for it`,
      );
      return { image, pulled: true };
    }
    if (!looksLikeReference(source)) {
      throw new BangerError('ERR_NOT_FOUND', `no image named "${source}" here or in the catalog`, {
        hint: `catalog images: ${this.#catalog.map((e) => e.name).join(', ')}; a registry image is named like docker does (debian:bookworm, localhost:5000/team/dev:1)`,
      });
    }
    const ref = parseReference(source);
    if (options.name !== undefined && this.inCatalog(options.name)) {
      throw new BangerError('ERR_ALREADY_EXISTS', `"${options.name}" is a catalog image name`, { hint: 'pick another --name' });
    }
    return await this.#registry.pull(ref, options, ctx);
  }

  /** The registry image pulled from `source` (a reference as typed), if any. */
  findByReference(source: string): ImageRecord | undefined {
    if (!looksLikeReference(source)) return undefined;
    let wanted: string;
    try {
      wanted = formatReference(parseReference(source));
    } catch {
      return undefined;
    }
    return this.#deps.images.list().find((image) => image.spec.oci?.ref === wanted);
  }

  async #pullFromCatalog(entry: ImageCatalogEntry, ctx: OpContext): Promise<ImageRecord> {
    // Before any work: a host that cannot build (tools, subordinate ids) fails at once.
    const host = resolveBuildHost();
    const { kernel } = await this.#deps.kernels.pull(entry.kernel, ctx);
    const build =
      this.#deps.buildRoot ??
      ((e: ImageCatalogEntry, target: string, h: BuildHost, c: OpContext) =>
        buildDebianRoot(e, this.#deps.mirror, target, join(this.#deps.layout.cacheDir, names.APT_CACHE_DIR), h, c));
    const id = newId();
    return publishStaged(
      this.#deps.layout.imagesDir,
      id,
      async (staging) => {
        const tarball = join(staging, ROOT_TARBALL);
        await build(entry, tarball, host, ctx);
        failpoint(FAILPOINTS.imagePull);
        const sizeBytes = await packExt4(tarball, join(staging, names.IMAGE_ROOTFS), host, ctx);
        rmSync(tarball, { force: true });
        return sizeBytes;
      },
      (final, sizeBytes) => {
        if (this.#deps.images.getByName(entry.name) !== undefined) {
          throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${entry.name}" was added while this one was being built`);
        }
        const spec: ImageSpec = {
          rootfs: join(final, names.IMAGE_ROOTFS),
          managed: true,
          sizeBytes,
          recipe: { suite: entry.suite, packages: [...entry.packages], mirror: this.#deps.mirror },
        };
        const image = this.#deps.images.insert({ id, name: entry.name, state: 'ready', source: 'catalog', kernelId: kernel.id, spec });
        ctx.log.info({ image: entry.name, id }, 'image published');
        return image;
      },
      ctx.signal,
    );
  }

  /** A catalog entry that is a bundle: its kernel is `--kernel` or the entry's (pulled first, so a bad one fails before the download). */
  async #pullCatalogBundle(
    entry: ImageCatalogEntry,
    bundle: { url: string; sha256: string },
    kernelRef: string | undefined,
    ctx: OpContext,
  ): Promise<ImageRecord> {
    const kernel = await this.#kernelFor(kernelRef ?? entry.kernel, ctx);
    return this.#publishBundle({ origin: { kind: 'url', ...bundle }, name: entry.name, source: 'catalog', kernel }, ctx);
  }

  /**
   * A bundle given by path or URL: its kernel is `--kernel`, else the
   * manifest's kernel_ref; its name `--name`, else the manifest's. What can
   * be refused before any download is refused first.
   */
  async #pullBundleSource(source: string, options: ImagePullOptions, ctx: OpContext): Promise<ImageRecord> {
    mustPass(BUNDLE_SOURCE.check(source), 'bundle');
    let origin: BundleOrigin;
    if (isUrlLike(source)) {
      if (options.sha256 === undefined) {
        throw new BangerError('ERR_INVALID_ARGUMENT', `pulling a bundle from a URL needs its sha256`, {
          hint: 'pass --sha256 <hex>: `banger image export` printed it where the bundle was made (or run sha256sum on the file)',
        });
      }
      origin = { kind: 'url', url: source, sha256: options.sha256 };
    } else {
      await checkBundleFile(source, undefined); // exists and is a file; the hash is checked in the pull
      origin = { kind: 'file', path: source, sha256: options.sha256 };
    }
    if (options.name !== undefined) {
      mustPass(IMAGE_NAME.check(options.name), 'image name');
      this.#assertNameFree(options.name);
    }
    const kernel = options.kernel === undefined ? undefined : await this.#kernelFor(options.kernel, ctx);
    const key = JSON.stringify([source, options.name ?? null, options.sha256 ?? null, options.kernel ?? null]);
    return this.#bundlePulls.run(
      key,
      ctx,
      (shared) => this.#publishBundle({ origin, name: options.name, source: 'bundle', kernel }, shared),
      `another pull of ${source} is in progress; waiting for it`,
    );
  }

  /**
   * Fetches (or checks) the bundle and unpacks it into a staging dir, then
   * publishes it with its record, like every pull: all of it or nothing.
   * The name and, when not fixed already, the kernel are settled as soon as
   * the manifest is read, before the root filesystem is unpacked.
   */
  #publishBundle(plan: BundlePlan, ctx: OpContext): Promise<ImageRecord> {
    const id = newId();
    return publishStaged(
      this.#deps.layout.imagesDir,
      id,
      async (staging) => {
        let file: string;
        if (plan.origin.kind === 'url') {
          const { url, sha256 } = plan.origin;
          file = join(staging, DOWNLOADED_BUNDLE);
          ctx.progress('download', `downloading ${url}`);
          await downloadBundle(url, file, sha256, {
            signal: ctx.signal,
            onProgress: (done, total) => {
              ctx.progress('download', `downloading ${url}`, { current: done, total });
            },
          });
        } else {
          file = plan.origin.path;
          if (plan.origin.sha256 !== undefined) ctx.progress('verify', `checking the sha256 of ${file}`);
          await checkBundleFile(file, plan.origin.sha256);
        }
        let name = plan.name;
        let kernel = plan.kernel;
        ctx.progress('unpack', 'unpacking the bundle');
        const { manifest, rootfs } = await unpackImageBundle(file, staging, {
          signal: ctx.signal,
          onManifest: async (m) => {
            name ??= this.#manifestName(m);
            kernel ??= await this.#manifestKernel(m, ctx);
          },
          onProgress: (done, total) => {
            ctx.progress('unpack', 'unpacking the root filesystem', { current: done, total });
          },
        });
        if (file.startsWith(staging)) rmSync(file, { force: true });
        assertExt4(rootfs);
        failpoint(FAILPOINTS.imagePull);
        if (name === undefined || kernel === undefined) throw new Error('the bundle was unpacked without its manifest being settled');
        return { manifest, name, kernel };
      },
      (final, built) => {
        if (this.#deps.images.getByName(built.name) !== undefined) {
          throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${built.name}" was added while this one was being pulled`);
        }
        const spec: ImageSpec = {
          rootfs: join(final, names.IMAGE_ROOTFS),
          managed: true,
          sizeBytes: built.manifest.sizeBytes,
          ...(built.manifest.oci === undefined ? {} : { oci: built.manifest.oci }),
          ...(built.manifest.sshServer === 'banger' ? { sshServer: 'banger' as const } : {}),
        };
        const image = this.#deps.images.insert({ id, name: built.name, state: 'ready', source: plan.source, kernelId: built.kernel.id, spec });
        ctx.log.info({ image: built.name, id, bundle: plan.origin.kind === 'url' ? plan.origin.url : plan.origin.path }, 'image published');
        return image;
      },
      ctx.signal,
    );
  }

  /** The manifest's name, when the pull names none: a valid name not taken yet. */
  #manifestName(manifest: ImageBundleManifest): string {
    const checked = IMAGE_NAME.check(manifest.name);
    if (!checked.ok) {
      throw new BangerError('ERR_INVALID_ARGUMENT', `the bundle's name ${describeValue(manifest.name)} is not a valid image name`, {
        hint: 'pass --name to call the image something else',
      });
    }
    this.#assertNameFree(checked.value);
    return checked.value;
  }

  /**
   * The manifest's kernel_ref, when the pull names no kernel: a kernel here
   * by exactly that name, or a catalog kernel (pulled now). A bundle naming
   * none, or one that is neither, is refused asking for --kernel.
   */
  async #manifestKernel(manifest: ImageBundleManifest, ctx: OpContext): Promise<{ id: string }> {
    const name = manifest.kernel_ref;
    if (name === null) {
      throw new BangerError('ERR_INVALID_ARGUMENT', `the bundle of ${manifest.name} names no kernel to boot it with`, {
        hint: 'pass --kernel <kernel> (see `banger kernel list` and `banger kernel catalog`)',
      });
    }
    if (this.#deps.kernels.catalog().some((entry) => entry.name === name)) return (await this.#deps.kernels.pull(name, ctx)).kernel;
    const kernel = this.#deps.kernels.byName(name);
    if (kernel === undefined) {
      throw new BangerError('ERR_NOT_FOUND', `the bundle of ${manifest.name} boots with kernel "${name}", which is neither here nor in the kernel catalog`, {
        hint: 'pull or import that kernel first (a kernel bundle: `banger kernel pull <file>.tar.zst`), or pass --kernel <kernel>',
      });
    }
    return kernel;
  }

  /** A kernel a pull names (name, id or unique prefix of one here), or a catalog kernel, pulled now. */
  async #kernelFor(ref: string, ctx: OpContext): Promise<{ id: string }> {
    if (this.#deps.kernels.catalog().some((entry) => entry.name === ref)) return (await this.#deps.kernels.pull(ref, ctx)).kernel;
    return this.#deps.kernels.find(ref);
  }

  #assertNameFree(name: string): void {
    const existing = this.#deps.images.getByName(name);
    if (existing !== undefined) {
      throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${name}" already exists`, {
        hint: `pass --name to pull the bundle under another name, or delete ${name} first`,
      });
    }
  }

  /**
   * Writes the image as a bundle at `path` (see bundle.ts): rootfs.ext4 and a
   * manifest naming its kernel, that `image pull` takes back on any host.
   */
  async export(ref: string, path: string, options: { force: boolean }, ctx: OpContext): Promise<BundleFileInfo & { image: ImageRecord }> {
    mustPass(BUNDLE_FILE.check(path), 'bundle path');
    const image = this.find(ref);
    assertExt4(image.spec.rootfs);
    const sizeBytes = statSync(image.spec.rootfs).size;
    const manifest = imageBundleManifest(image.name, this.#deps.kernels.byId(image.kernelId)?.name ?? null, sizeBytes, image.spec);
    const what = `writing ${image.name} to ${path}`;
    ctx.progress('export', what, { current: 0, total: sizeBytes });
    const written = await writeBundle(path, manifest, [{ name: names.IMAGE_ROOTFS, path: image.spec.rootfs }], {
      force: options.force,
      signal: ctx.signal,
      onProgress: (done, total) => {
        ctx.progress('export', what, { current: done, total });
      },
    });
    ctx.log.info({ image: image.name, path, sha256: written.sha256, bytes: written.sizeBytes }, 'image exported');
    return { ...written, image };
  }

  /** Registers an ext4 root filesystem where it lies, with a kernel to boot it. */
  register(name: string, rootfs: string, kernelRef: string): ImageRecord {
    mustPass(IMAGE_NAME.check(name), 'image name');
    if (this.#deps.images.getByName(name) !== undefined) {
      throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${name}" already exists`, {
        hint: `delete it first with \`banger image delete ${name}\`, or pick another name`,
      });
    }
    assertExt4(rootfs);
    const kernel = this.#deps.kernels.find(kernelRef);
    return this.#deps.images.insert({
      id: newId(),
      name,
      state: 'ready',
      source: 'register',
      kernelId: kernel.id,
      spec: { rootfs, managed: false, sizeBytes: statSync(rootfs).size },
    });
  }

  /** Copies a registered image's rootfs into banger's own directory, so the original may go. */
  promote(ref: string, ctx: OpContext): Promise<ImageRecord> {
    const image = this.find(ref);
    if (image.spec.managed) {
      throw new BangerError('ERR_INVALID_ARGUMENT', `image ${image.name} is already managed by banger`, { hint: 'only registered images need promoting' });
    }
    assertExt4(image.spec.rootfs);
    ctx.progress('copy', `copying ${image.spec.rootfs} into banger's image store`);
    return publishStaged(
      this.#deps.layout.imagesDir,
      image.id,
      async (staging) => {
        await copyFile(image.spec.rootfs, join(staging, names.IMAGE_ROOTFS));
      },
      (final) => {
        const spec: ImageSpec = { ...image.spec, rootfs: join(final, names.IMAGE_ROOTFS), managed: true };
        this.#deps.images.updateSpec(image.id, spec);
        return { ...image, spec };
      },
      ctx.signal,
    );
  }

  /** Deletes an image; refused while a VM uses it. A registered image's file is left alone. */
  delete(ref: string): ImageRecord {
    const image = this.find(ref);
    const users = this.#deps.images.vmsUsing(image.id);
    if (users.length > 0) {
      throw new BangerError('ERR_IN_USE', `image ${image.name} is used by VM${users.length > 1 ? 's' : ''} ${users.join(', ')}`, {
        hint: 'delete those VMs first',
      });
    }
    this.#deps.images.delete(image.id);
    if (image.spec.managed) rmSync(this.dir(image), { recursive: true, force: true });
    return image;
  }

  sweepStaging(): void {
    sweepStaging(this.#deps.layout.imagesDir);
  }
}

/** Refuses anything that is not a readable ext2/3/4 filesystem image. */
function assertExt4(path: string): void {
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new BangerError('ERR_NOT_FOUND', `${path} is not a file`, { hint: 'pass the absolute path of an ext4 root filesystem image' });
  }
  const magic = Buffer.alloc(2);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, magic, 0, 2, EXT4_MAGIC_OFFSET);
  } finally {
    closeSync(fd);
  }
  if (magic.readUInt16LE(0) !== 0xef53) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `${path} is not an ext4 filesystem image`, { hint: 'build one with mkfs.ext4 -d <dir> <file> <size>' });
  }
}
