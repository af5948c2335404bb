import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';

import type { Logger } from 'pino';

import type { BangerConfig, NetworkSettings } from '../config/schema.js';
import { dropbearBundle } from '../guest/dropbear.js';
import { renderSshConfig, writeSshConfigFile } from '../guest/ssh-config.js';
import { isRoot } from '../host/command.js';
import { HelperClient } from '../root-helper/client.js';
import { InProcessOps, type PrivilegedOps } from '../root-helper/privileged-ops.js';
import { helperSocketPath } from '../root-helper/protocol.js';
import type { Layout } from '../config/paths.js';
import { ExecService } from '../services/exec/exec-service.js';
import { ImageService } from '../services/image/image-service.js';
import { KernelService } from '../services/kernel/kernel-service.js';
import { dockerConfigLookup, execHelper, readDockerConfig } from '../services/oci/docker-config.js';
import { parseResolvConf, VmDnsServer } from '../services/network/dns-server.js';
import { HostNetwork } from '../services/network/host-network.js';
import { slotNetwork } from '../services/network/slot.js';
import { DaemonEventBus } from '../services/stats/event-bus.js';
import { StatsService } from '../services/stats/stats-service.js';
import { ConsoleRecorder } from '../services/vm/console-log.js';
import { GuestAccess } from '../services/vm/guest-access.js';
import { VmDirectory } from '../services/vm/vm-directory.js';
import { VmProvisioner } from '../services/vm/vm-provisioner.js';
import { VmRuntime } from '../services/vm/vm-runtime.js';
import { VmService } from '../services/vm/vm-service.js';
import { WorkspaceService } from '../services/workspace/workspace-service.js';
import type { Store } from '../store/database.js';
import { ImagesRepo } from '../store/images-repo.js';
import { KernelsRepo } from '../store/kernels-repo.js';
import { VmsRepo } from '../store/vms-repo.js';
import type { DriverRegistry } from '../vmm/registry.js';
import { vmInfo } from './vm-handlers.js';

export interface Services {
  kernels: KernelService;
  images: ImageService;
  vms: VmService;
  guests: GuestAccess;
  consoles: ConsoleRecorder;
  workspaces: WorkspaceService;
  exec: ExecService;
  network: HostNetwork;
  dns: VmDnsServer;
  /** VM changes, deletions and stats samples, for daemon.events subscribers (and the stats loop). */
  events: DaemonEventBus;
  stats: StatsService;
}

/**
 * Who makes the privileged host changes: this process when banger runs as
 * root (same allow-list and checks, in process), the root helper otherwise.
 * BANGER_ROOT_HELPER_SOCKET points at a helper other than the installed one
 * (tests run their own).
 */
export function privilegedOps(settings: NetworkSettings, env: NodeJS.ProcessEnv): PrivilegedOps {
  if (isRoot()) return new InProcessOps({ uid: 0, gid: 0, bridge: settings.bridge, subnet: settings.subnet });
  const uid = process.getuid?.() ?? -1;
  return new HelperClient(env.BANGER_ROOT_HELPER_SOCKET ?? helperSocketPath(uid));
}

/** The daemon's composition root: every service built once, each given exactly what it uses. */
export function createServices(deps: {
  layout: Layout;
  store: Store;
  config: BangerConfig;
  env: NodeJS.ProcessEnv;
  drivers: DriverRegistry;
  log: Logger;
}): Services {
  const { layout, store, config, env, log } = deps;
  const ops = privilegedOps(config.network, env);
  // The DNS directory reads VMs lazily: `vms` is built below.
  const dns = new VmDnsServer({
    directory: { resolve: (name) => directory.liveAddress(name), mayForward: (address) => directory.natEnabledFor(address) },
    upstreams: () => hostResolvers(),
    log,
  });
  const network = new HostNetwork({
    ops,
    settings: config.network,
    uid: process.getuid?.() ?? 0,
    log,
    // Once the bridge exists: DNS answers on its address too, and the host resolves *.vm through it where it can.
    afterBridge: async () => {
      await dns.listen(slotNetwork(config.network, 1).gatewayIp, config.network.dnsPort);
      const routing = await ops.routeResolver(config.network.bridge, config.network.dnsPort);
      log.info({ routed: routing.routed }, routing.detail);
      return routing.routed ? routing.detail : undefined;
    },
  });
  const kernels = new KernelService({ layout, kernels: new KernelsRepo(store), mirror: config.kernelMirror, env });
  const images = new ImageService({
    layout,
    images: new ImagesRepo(store),
    kernels,
    mirror: config.kernelMirror,
    registry: {
      insecure: config.insecureRegistries,
      credentials: () => {
        const docker = readDockerConfig(env, env.HOME ?? homedir());
        return docker === undefined ? undefined : dockerConfigLookup(docker, execHelper(env));
      },
      sshBundle: () => dropbearBundle(env),
    },
  });
  const events = new DaemonEventBus((error, event) => {
    log.warn({ kind: event.kind, err_message: error instanceof Error ? error.message : String(error) }, 'an event listener failed');
  });
  // Every write to the vms table announces itself (the one place all VM transitions pass), as the VM now looks.
  const vmsRepo = new VmsRepo(store, {
    changed: (id) => {
      try {
        const record = vmsRepo.get(id);
        if (record !== undefined) events.publish({ kind: 'vm.changed', vm: vmInfo(vms.view(record), stats.latest(id)) });
      } catch (error) {
        log.warn({ vm_id: id, err_message: error instanceof Error ? error.message : String(error) }, 'could not announce a VM change');
      }
    },
    deleted: (vm) => {
      events.publish({ kind: 'vm.deleted', vm });
    },
  });
  const guests = new GuestAccess({ keyPath: layout.sshKey, knownHosts: layout.knownHosts });
  const consoles = new ConsoleRecorder({ log });
  const vms = new VmService({
    layout,
    vms: vmsRepo,
    guests,
    images,
    kernels,
    runtime: new VmRuntime(deps.drivers, consoles),
    provisioner: new VmProvisioner({ knownHosts: layout.knownHosts, sshKey: layout.sshKey, fileSync: config.fileSync, env }),
    network,
    networkConfig: config.network,
    defaultImage: config.defaultImage,
    onRunningChanged: () => {
      try {
        writeSshConfigFile(layout.sshConfig, renderSshConfig({ keyPath: layout.sshKey, knownHosts: layout.knownHosts, hosts: directory.liveHosts() }));
      } catch (error) {
        log.warn({ err_message: error instanceof Error ? error.message : String(error) }, 'could not write banger ssh_config');
      }
    },
  });
  const directory = new VmDirectory({ vms: vmsRepo, network: config.network, alive: (vm) => vms.alive(vm) });
  const workspaces = new WorkspaceService({ vms, repo: vmsRepo });
  const exec = new ExecService({ vms, workspaces, images });
  const stats = new StatsService({ vms, events, intervalMs: config.statsPollIntervalMs, log });
  return { kernels, images, vms, guests, consoles, workspaces, exec, network, dns, events, stats };
}

/** The host's own resolvers, where names beyond `.vm` are forwarded for VMs with NAT. */
function hostResolvers(): string[] {
  try {
    return parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8'));
  } catch {
    return [];
  }
}
