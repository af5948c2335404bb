import { BangerError, toBangerError } from '../rpc/errors.js';
import { EVENT_NOTIFICATION, type DaemonEvent, type VmInfo } from '../rpc/methods.js';
import type { BusEvent, DaemonEventBus } from '../services/stats/event-bus.js';
import { listGuestPorts } from '../services/stats/ports.js';
import type { StatsService } from '../services/stats/stats-service.js';
import type { VmService, VmView } from '../services/vm/vm-service.js';
import type { DaemonHandlers } from './rpc-server.js';
import { vmInfo } from './vm-handlers.js';

export interface StatsHandlerDeps {
  vms: Pick<VmService, 'list' | 'show' | 'guest'>;
  stats: Pick<StatsService, 'stats' | 'latest'>;
  events: DaemonEventBus;
}

/** vm.stats, vm.ports and the daemon.events subscription; params arrive checked (see withCheckedParams). */
export function createStatsHandlers(deps: StatsHandlerDeps): Pick<DaemonHandlers, 'vmStats' | 'vmPorts' | 'events'> {
  const info = (view: VmView): VmInfo => vmInfo(view, deps.stats.latest(view.vm.id));
  return {
    vmStats: async ({ ref }) => ({ stats: await deps.stats.stats(ref) }),
    vmPorts: ({ ref }, ctx) => listGuestPorts({ vms: deps.vms }, ref, ctx.signal),
    events: async ({ subscriptionToken, kinds }, ctx) => {
      const notify = ctx.notify;
      if (notify === undefined) throw new BangerError('ERR_INTERNAL', 'daemon.events needs a client connection to send its events on');
      const send = (event: BusEvent): void => {
        const message: DaemonEvent = { token: subscriptionToken, ...event };
        notify(EVENT_NOTIFICATION, message);
      };
      // Events published while the snapshot is read wait behind it: each is newer than the snapshot, so order holds.
      let queued: BusEvent[] | undefined = [];
      const unsubscribe = deps.events.subscribe((event) => {
        if (queued === undefined) send(event);
        else queued.push(event);
      }, kinds);
      try {
        ctx.log.info({ kinds: kinds ?? 'all' }, 'event subscription started');
        if (kinds === undefined || kinds.includes('vm.changed')) for (const view of await deps.vms.list()) send({ kind: 'vm.changed', vm: info(view) });
        for (const event of queued) send(event);
        queued = undefined;
        await untilAborted(ctx.signal);
      } finally {
        unsubscribe();
      }
      const reason = toBangerError(ctx.signal.reason);
      // The client ended it (cancelled, or went away): that is how a subscription finishes. A shutdown is an error the client sees.
      if (reason.code === 'ERR_CANCELLED') return { ended: true };
      throw reason;
    },
  };
}

/** Resolves when `signal` aborts. */
function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    signal.addEventListener(
      'abort',
      () => {
        resolve();
      },
      { once: true },
    );
  });
}
