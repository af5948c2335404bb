import { BangerError } from '../rpc/errors.js';
import type { KernelInfo } from '../rpc/methods.js';
import type { KernelService } from '../services/kernel/kernel-service.js';
import type { KernelRecord } from '../store/kernels-repo.js';
import type { DaemonHandlers } from './rpc-server.js';

export type KernelHandlers = Pick<
  DaemonHandlers,
  'kernelList' | 'kernelCatalog' | 'kernelShow' | 'kernelPull' | 'kernelExport' | 'kernelImport' | 'kernelDelete'
>;

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
      if (params.source !== undefined)
        return { kernel: info(await kernels.pullBundle(params.source, { name: params.name, sha256: params.sha256 }, ctx)), pulled: true };
      if (params.name === undefined) {
        throw new BangerError('ERR_INVALID_ARGUMENT', 'kernel.pull needs "name" (a catalog kernel) or "source" (a kernel bundle)', {
          hint: 'see `banger kernel catalog`',
        });
      }
      if (params.sha256 !== undefined) {
        throw new BangerError('ERR_INVALID_ARGUMENT', '--sha256 is for kernel bundles given by path or URL', {
          hint: 'catalog kernels are verified by the catalog',
        });
      }
      const { kernel, pulled } = await kernels.pull(params.name, ctx);
      return { kernel: info(kernel), pulled };
    },
    kernelExport: async (params, ctx) => {
      const { kernel, ...written } = await kernels.export(params.ref, params.path, { force: params.force === true }, ctx);
      return { kernel: kernel.name, ...written };
    },
    kernelImport: async (params, ctx) => info(await kernels.import(params.name, params.kernelPath, params.modulesDir, ctx)),
    kernelDelete: (params) => Promise.resolve(info(kernels.delete(params.ref))),
  };
}
