import type { ImageInfo } from '../rpc/methods.js';
import type { ImageService } from '../services/image/image-service.js';
import type { KernelService } from '../services/kernel/kernel-service.js';
import type { ImageRecord } from '../store/images-repo.js';
import type { DaemonHandlers } from './rpc-server.js';

export type ImageHandlers = Pick<
  DaemonHandlers,
  'imageList' | 'imageCatalog' | 'imageShow' | 'imagePull' | 'imageExport' | 'imageRegister' | 'imagePromote' | 'imageDelete'
>;

/** Image methods; params arrive checked against their schemas (see withCheckedParams). */
export function createImageHandlers(images: ImageService, kernels: KernelService): ImageHandlers {
  const info = (image: ImageRecord): ImageInfo => {
    const kernel = kernels.byId(image.kernelId);
    return {
      id: image.id,
      name: image.name,
      state: image.state,
      source: image.source,
      ref: image.spec.oci?.ref ?? null,
      digest: image.spec.oci?.digest ?? null,
      kernel: { id: image.kernelId, name: kernel?.name ?? '(missing)' },
      rootfs: image.spec.rootfs,
      managed: image.spec.managed,
      sizeBytes: image.spec.sizeBytes,
      recipe: image.spec.recipe ?? null,
      createdAt: image.createdAt,
    };
  };
  return {
    imageList: () => Promise.resolve({ images: images.list().map(info) }),
    imageCatalog: () => Promise.resolve({ entries: images.catalog() }),
    imageShow: (params) => Promise.resolve(info(images.find(params.ref))),
    imagePull: async (params, ctx) => {
      const { image, pulled } = await images.pull(params.source, ctx, { name: params.name, kernel: params.kernel, sha256: params.sha256 });
      return { image: info(image), pulled };
    },
    imageExport: async (params, ctx) => {
      const { image, ...written } = await images.export(params.ref, params.path, { force: params.force === true }, ctx);
      return { image: image.name, ...written };
    },
    imageRegister: (params) => Promise.resolve(info(images.register(params.name, params.rootfs, params.kernel))),
    imagePromote: async (params, ctx) => info(await images.promote(params.ref, ctx)),
    imageDelete: (params) => Promise.resolve(info(images.delete(params.ref))),
  };
}
