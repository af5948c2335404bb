import type { KernelInfo } from '../rpc/methods.js';
import type { KernelService } from '../services/kernel/kernel-service.js';
import type { KernelRecord } from '../store/kernels-repo.js';
import type { DaemonHandlers } from './rpc-server.js';

export type KernelHandlers = Pick<DaemonHandlers, 'kernelList' | 'kernelCatalog' | 'kernelShow' | 'kernelPull' | 'kernelImport' | 'kernelDelete'>;

export function kernelInfo(service: KernelService, kernel: KernelRecord): KernelInfo {
  return {
    id: kernel.id,
    name: kernel.name,
    state: kernel.state,
    source: kernel.source,
    version: kernel.version,
    release: kernel.spec.release ?? null,
    package: kernel.spec.package ?? null,
    modules: kernel.spec.modules,
    createdAt: kernel.createdAt,
    files: service.files(kernel),
  };
}

/** Kernel methods; params arrive checked against their schemas (see withCheckedParams). */
export function createKernelHandlers(kernels: KernelService): KernelHandlers {
  const info = (kernel: KernelRecord): KernelInfo => kernelInfo(kernels, kernel);
  return {
    kernelList: () => Promise.resolve({ kernels: kernels.list().map(info) }),
    kernelCatalog: () => Promise.resolve({ entries: kernels.catalog() }),
    kernelShow: (params) => Promise.resolve(info(kernels.find(params.ref))),
    kernelPull: async (params, ctx) => {
      const { kernel, pulled } = await kernels.pull(params.name, ctx);
      return { kernel: info(kernel), pulled };
    },
    kernelImport: async (params, ctx) => info(await kernels.import(params.name, params.kernelPath, params.modulesDir, ctx)),
    kernelDelete: (params) => Promise.resolve(info(kernels.delete(params.ref))),
  };
}
