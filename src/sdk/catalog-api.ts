import type { RpcClient } from '../rpc/client.js';
import type {
  BundleFileInfo,
  ImageCatalogEntryInfo,
  ImageInfo,
  ImagePullParams,
  ImageRegisterParams,
  KernelCatalogEntryInfo,
  KernelImportParams,
  KernelInfo,
  KernelPullParams,
} from '../rpc/methods.js';
import { signalOnly, splitOptions, type RequestOptions, type SignalOptions } from './request-options.js';

/** image.pull's params besides the source. */
export type ImagePullOptions = Omit<ImagePullParams, 'source' | 'progressToken'> & RequestOptions;
/** kernel.pull's params: a catalog kernel by `name`, or a bundle from `source`. */
export type KernelPullOptions = Omit<KernelPullParams, 'progressToken'> & RequestOptions;
export type KernelImportOptions = Omit<KernelImportParams, 'progressToken'> & RequestOptions;
export type ImageRegisterOptions = ImageRegisterParams & SignalOptions;
export interface ExportBundleOptions extends RequestOptions {
  /** Replace a file already there (otherwise refused with ERR_ALREADY_EXISTS). */
  force?: boolean | undefined;
}

/** `client.image`: the images VMs boot from (image.* methods). */
export class ImageApi {
  readonly #rpc: RpcClient;

  constructor(rpc: RpcClient) {
    this.#rpc = rpc;
  }

  async list(options: SignalOptions = {}): Promise<ImageInfo[]> {
    return (await this.#rpc.call('imageList', {}, signalOnly(options))).images;
  }

  /** The images banger knows how to build or fetch, and whether each is pulled. */
  async catalog(options: SignalOptions = {}): Promise<ImageCatalogEntryInfo[]> {
    return (await this.#rpc.call('imageCatalog', {}, signalOnly(options))).entries;
  }

  show(ref: string, options: SignalOptions = {}): Promise<ImageInfo> {
    return this.#rpc.call('imageShow', { ref }, signalOnly(options));
  }

  /**
   * Pulls a catalog image (building it, and pulling its kernel), a registry
   * reference, or a bundle (absolute path or URL of a `.tar.zst`); one already
   * present comes back with `pulled: false`. Reports progress.
   */
  pull(source: string, options: ImagePullOptions = {}): Promise<{ image: ImageInfo; pulled: boolean }> {
    const [params, call] = splitOptions(options);
    return this.#rpc.call('imagePull', { ...params, source }, call);
  }

  /** Registers an ext4 root filesystem the user keeps (banger does not copy it). */
  register(options: ImageRegisterOptions): Promise<ImageInfo> {
    const { signal, ...params } = options;
    return this.#rpc.call('imageRegister', params, { signal });
  }

  /** Copies a registered image's rootfs into banger's store. Reports progress. */
  promote(ref: string, options: RequestOptions = {}): Promise<ImageInfo> {
    return this.#rpc.call('imagePromote', { ref }, options);
  }

  /** Writes an image bundle at `path` (absolute, ending in `.tar.zst`) that `pull` takes back. Reports progress. */
  export(ref: string, path: string, options: ExportBundleOptions = {}): Promise<BundleFileInfo & { image: string }> {
    const [params, call] = splitOptions(options);
    return this.#rpc.call('imageExport', { ...params, ref, path }, call);
  }

  /** Refused with ERR_IN_USE while a VM uses the image. */
  delete(ref: string, options: SignalOptions = {}): Promise<ImageInfo> {
    return this.#rpc.call('imageDelete', { ref }, signalOnly(options));
  }
}

/** `client.kernel`: the kernels images boot with (kernel.* methods). */
export class KernelApi {
  readonly #rpc: RpcClient;

  constructor(rpc: RpcClient) {
    this.#rpc = rpc;
  }

  async list(options: SignalOptions = {}): Promise<KernelInfo[]> {
    return (await this.#rpc.call('kernelList', {}, signalOnly(options))).kernels;
  }

  async catalog(options: SignalOptions = {}): Promise<KernelCatalogEntryInfo[]> {
    return (await this.#rpc.call('kernelCatalog', {}, signalOnly(options))).entries;
  }

  show(ref: string, options: SignalOptions = {}): Promise<KernelInfo> {
    return this.#rpc.call('kernelShow', { ref }, signalOnly(options));
  }

  /**
   * Pulls a catalog kernel (`'debian-bookworm-cloud'` or `{ name }`) or a
   * kernel bundle (`{ source, sha256? }`); one already present comes back
   * with `pulled: false`. Reports progress.
   */
  pull(nameOrOptions: string | KernelPullOptions): Promise<{ kernel: KernelInfo; pulled: boolean }> {
    const [params, call] = splitOptions(typeof nameOrOptions === 'string' ? { name: nameOrOptions } : nameOrOptions);
    return this.#rpc.call('kernelPull', params, call);
  }

  /** Imports a bzImage or vmlinux (and its module tree) under a name. */
  import(options: KernelImportOptions): Promise<KernelInfo> {
    const [params, call] = splitOptions(options);
    return this.#rpc.call('kernelImport', params, call);
  }

  /** Writes a kernel bundle at `path` (absolute, ending in `.tar.zst`) that `pull` takes back. Reports progress. */
  export(ref: string, path: string, options: ExportBundleOptions = {}): Promise<BundleFileInfo & { kernel: string }> {
    const [params, call] = splitOptions(options);
    return this.#rpc.call('kernelExport', { ...params, ref, path }, call);
  }

  /** Refused with ERR_IN_USE while an image uses the kernel. */
  delete(ref: string, options: SignalOptions = {}): Promise<KernelInfo> {
    return this.#rpc.call('kernelDelete', { ref }, signalOnly(options));
  }
}
