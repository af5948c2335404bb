import { setTimeout as sleep } from 'node:timers/promises';

import type { Layout } from '../config/paths.js';
import { buildInfo } from '../build-info.js';
import type { KernelService } from '../services/kernel/kernel-service.js';
import type { ImageService } from '../services/image/image-service.js';
import type { HostNetwork } from '../services/network/host-network.js';
import { createImageHandlers } from './image-handlers.js';
import { createKernelHandlers } from './kernel-handlers.js';
import type { ExecService } from '../services/exec/exec-service.js';
import type { VmService } from '../services/vm/vm-service.js';
import type { WorkspaceService } from '../services/workspace/workspace-service.js';
import type { DaemonEventBus } from '../services/stats/event-bus.js';
import type { StatsService } from '../services/stats/stats-service.js';
import { withCheckedParams } from './params.js';
import { createVmHandlers } from './vm-handlers.js';
import { createStatsHandlers } from './stats-handlers.js';
import type { VmDefaultsInfo } from '../rpc/methods.js';
import type { DaemonHandlers } from './rpc-server.js';
import type { StreamHub } from './stream-hub.js';
import { createWorkspaceHandlers } from './workspace-handlers.js';

export interface HandlerDeps {
  layout: Layout;
  kernels: KernelService;
  images: ImageService;
  vms: VmService;
  workspaces: WorkspaceService;
  exec: ExecService;
  network: HostNetwork;
  events: DaemonEventBus;
  stats: StatsService;
  streams: StreamHub;
  /** What vm.create fills in for spec fields left out (see ./vm-defaults.ts). */
  vmDefaults: () => VmDefaultsInfo;
  startedAt: Date;
  inFlight: () => number;
  /** Starts a graceful shutdown after the current response has been sent. */
  requestShutdown: (reason: string) => void;
}

/**
 * The daemon's method table. Params come off the wire untyped: every handler
 * runs behind withCheckedParams, which checks them against the method's
 * schema (src/rpc/method-params.ts) first.
 */
export function createHandlers(deps: HandlerDeps): DaemonHandlers {
  const { version, buildId } = buildInfo();
  return withCheckedParams({
    ...createKernelHandlers(deps.kernels),
    ...createImageHandlers(deps.images, deps.kernels),
    ...createVmHandlers(deps.vms, deps.vmDefaults, (vmId) => deps.stats.latest(vmId)),
    ...createStatsHandlers(deps),
    ...createWorkspaceHandlers(deps),
    ping: () =>
      Promise.resolve({
        pid: process.pid,
        version,
        buildId,
        startedAt: deps.startedAt.toISOString(),
        socketPath: deps.layout.socketPath,
        stateDir: deps.layout.stateDir,
        logPath: deps.layout.daemonLog,
        inFlight: deps.inFlight(),
        network: deps.network.status(),
      }),

    shutdown: (_params, ctx) => {
      ctx.log.info('shutdown requested by a client');
      deps.requestShutdown('client request');
      return Promise.resolve({ pid: process.pid });
    },

    sleep: async ({ ms }, ctx) => {
      ctx.log.info({ ms }, 'sleeping');
      const started = performance.now();
      await sleep(ms, undefined, { signal: ctx.signal });
      return { sleptMs: Math.round(performance.now() - started) };
    },
  });
}
