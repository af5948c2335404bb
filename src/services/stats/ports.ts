import type { GuestPortInfo } from '../../rpc/methods.js';
import type { VmService } from '../vm/vm-service.js';
import { GUEST_PORTS_MAX_BYTES, GUEST_PORTS_SCRIPT, parseGuestPorts } from './guest-ports.js';
import { runProbe, type ProbeGuest } from './guest-probe.js';

/** The longest the guest may take to list its sockets (a shell loop over /proc under TCG takes a second or two). */
const PORTS_TIMEOUT_MS = 60_000;

export interface PortsDeps {
  vms: Pick<VmService, 'show'> & { guest: (ref: string) => Promise<{ guest: ProbeGuest }> };
}

/** vm.ports: the running VM's listening TCP and UDP sockets, with their processes and where the host reaches them. */
export async function listGuestPorts(deps: PortsDeps, ref: string, signal: AbortSignal): Promise<{ vm: string; ip: string; ports: GuestPortInfo[] }> {
  const view = await deps.vms.show(ref);
  const { guest } = await deps.vms.guest(view.vm.id);
  const output = await runProbe(guest, GUEST_PORTS_SCRIPT, {
    maxBytes: GUEST_PORTS_MAX_BYTES,
    signal: AbortSignal.any([signal, AbortSignal.timeout(PORTS_TIMEOUT_MS)]),
    what: 'listing listening sockets',
  });
  return { vm: view.vm.name, ip: view.guestIp, ports: parseGuestPorts(output, view.guestIp) };
}
