import { formatIpv4, gatewayOf, parseSubnet, subnetSize, type Subnet } from '../../host/ipv4.js';
import { BangerError } from '../../rpc/errors.js';

/**
 * Everything about a VM's address derives from its slot index and the
 * configured subnet, and is never stored twice: the host (bridge) takes the
 * subnet's first address, slot N takes address N+1, and the MAC is named
 * after the slot. Taps are not: they come from the tap pool (see tap-pool.ts).
 */
export interface SlotNetwork {
  slot: number;
  mac: string;
  guestIp: string;
  gatewayIp: string;
  prefix: number;
}

export interface NetworkConfig {
  bridge: string;
  subnet: string;
}

function subnetOf(text: string): Subnet {
  const subnet = parseSubnet(text);
  if (subnet === undefined) throw new BangerError('ERR_CONFIG_INVALID', `network.subnet ${text} is not an IPv4 network address`);
  return subnet;
}

/** Slots available in a subnet: every address but network, gateway and broadcast. */
export function slotCapacity(subnet: string): number {
  return subnetSize(subnetOf(subnet)) - 3;
}

export function slotNetwork(config: NetworkConfig, slot: number): SlotNetwork {
  const subnet = subnetOf(config.subnet);
  if (!Number.isInteger(slot) || slot < 1 || slot > slotCapacity(config.subnet)) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `slot ${slot} does not fit in ${config.subnet}`);
  }
  return {
    slot,
    // Locally administered unicast (0x52), then "ba" for banger, then the slot.
    mac: `52:54:ba:${((slot >> 16) & 255).toString(16).padStart(2, '0')}:${((slot >> 8) & 255).toString(16).padStart(2, '0')}:${(slot & 255).toString(16).padStart(2, '0')}`,
    guestIp: formatIpv4(subnet.base + slot + 1),
    gatewayIp: formatIpv4(gatewayOf(subnet)),
    prefix: subnet.prefix,
  };
}

/** The slot whose guest address is `ip`, or undefined when `ip` is not a guest address of the subnet. */
export function slotOfAddress(config: NetworkConfig, ip: string): number | undefined {
  const subnet = subnetOf(config.subnet);
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4) return undefined;
  const value = parts.reduce((acc, part) => acc * 256 + part, 0);
  const slot = value - subnet.base - 1;
  return slot >= 1 && slot <= slotCapacity(config.subnet) ? slot : undefined;
}
