import type { BangerConfig } from '../config/schema.js';
import type { Layout } from '../config/paths.js';
import { ExecService } from '../services/exec/exec-service.js';
import { ImageService } from '../services/image/image-service.js';
import { KernelService } from '../services/kernel/kernel-service.js';
import { HostNetwork } from '../services/network/host-network.js';
import { GuestAccess } from '../services/vm/guest-access.js';
import { VmService } from '../services/vm/vm-service.js';
import { WorkspaceService } from '../services/workspace/workspace-service.js';
import type { Store } from '../store/database.js';
import { ImagesRepo } from '../store/images-repo.js';
import { KernelsRepo } from '../store/kernels-repo.js';
import { VmsRepo } from '../store/vms-repo.js';
import type { VmmDriver } from '../vmm/driver.js';

export interface Services {
  kernels: KernelService;
  images: ImageService;
  vms: VmService;
  guests: GuestAccess;
  workspaces: WorkspaceService;
  exec: ExecService;
}

/** The daemon's composition root: every service built once, each given exactly what it uses. */
export function createServices(deps: { layout: Layout; store: Store; config: BangerConfig; env: NodeJS.ProcessEnv; driver: VmmDriver }): Services {
  const { layout, store, config, env } = deps;
  const kernels = new KernelService({ layout, kernels: new KernelsRepo(store), mirror: config.kernelMirror, env });
  const images = new ImageService({ layout, images: new ImagesRepo(store), kernels, mirror: config.kernelMirror });
  const vmsRepo = new VmsRepo(store);
  const guests = new GuestAccess({ keyPath: layout.sshKey, knownHosts: layout.knownHosts });
  const vms = new VmService({
    layout,
    vms: vmsRepo,
    guests,
    images,
    kernels,
    driver: deps.driver,
    network: new HostNetwork(config.network),
    networkConfig: config.network,
    fileSync: config.fileSync,
    defaultImage: config.defaultImage,
    env,
  });
  const workspaces = new WorkspaceService({ vms, repo: vmsRepo });
  const exec = new ExecService({ vms, workspaces });
  return { kernels, images, vms, guests, workspaces, exec };
}
