import type { VmRecord, VmsRepo } from '../../store/vms-repo.js';
import { slotNetwork, slotOfAddress, type NetworkConfig } from '../network/slot.js';

/**
 * Questions about running VMs asked by the DNS server and banger's
 * ssh_config: by name, by address, and all of them. Read-only; "running"
 * means the VMM is really alive, not just recorded as running.
 */
export class VmDirectory {
  readonly #vms: VmsRepo;
  readonly #network: NetworkConfig;
  readonly #alive: (vm: VmRecord) => boolean;

  constructor(deps: { vms: VmsRepo; network: NetworkConfig; alive: (vm: VmRecord) => boolean }) {
    this.#vms = deps.vms;
    this.#network = deps.network;
    this.#alive = deps.alive;
  }

  /** The address of the running VM called `name`, if there is one. */
  liveAddress(name: string): string | undefined {
    const vm = this.#vms.list().find((candidate) => candidate.name === name);
    return vm !== undefined && this.#alive(vm) ? slotNetwork(this.#network, vm.slot).guestIp : undefined;
  }

  /** Whether `address` belongs to a running VM with NAT on (only those may resolve names beyond `.vm`). */
  natEnabledFor(address: string): boolean {
    const slot = slotOfAddress(this.#network, address);
    const vm = slot === undefined ? undefined : this.#vms.list().find((candidate) => candidate.slot === slot);
    return vm !== undefined && vm.spec.nat && this.#alive(vm);
  }

  /** Name and address of every running VM. */
  liveHosts(): { name: string; ip: string }[] {
    return this.#vms
      .list()
      .filter((vm) => this.#alive(vm))
      .map((vm) => ({ name: vm.name, ip: slotNetwork(this.#network, vm.slot).guestIp }));
  }
}
