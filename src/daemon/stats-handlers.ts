import { BangerError } from '../rpc/errors.js';
import type { DaemonHandlers } from './rpc-server.js';

// PLACEHOLDER while stats, ports and events are being built in this change; replaced before it lands.
export function createStatsHandlers(): Pick<DaemonHandlers, 'vmStats' | 'vmPorts' | 'events'> {
  const notYet = (): Promise<never> => Promise.reject(new BangerError('ERR_INTERNAL', 'not built yet'));
  return { vmStats: notYet, vmPorts: notYet, events: notYet };
}
