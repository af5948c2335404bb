import { BangerError } from '../../rpc/errors.js';

/**
 * Everything about a VM's network derives from its slot index and the
 * configured bridge and subnet, and is never stored twice: the host (bridge)
 * takes the subnet's first address, slot N takes address N+1, and the tap
 * and MAC are named after the slot.
 */
export interface SlotNetwork {
  slot: number;
  tap: string;
  mac: string;
  guestIp: string;
  gatewayIp: string;
  prefix: number;
}

export interface NetworkConfig {
  bridge: string;
  subnet: string;
}

function parseSubnet(subnet: string): { base: number; prefix: number } {
  const [address = '', prefixText = ''] = subnet.split('/');
  const octets = address.split('.').map(Number);
  const base = (((octets[0] ?? 0) << 24) | ((octets[1] ?? 0) << 16) | ((octets[2] ?? 0) << 8) | (octets[3] ?? 0)) >>> 0;
  return { base, prefix: Number(prefixText) };
}

function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Slots available in a subnet: every address but network, gateway and broadcast. */
export function slotCapacity(subnet: string): number {
  return 2 ** (32 - parseSubnet(subnet).prefix) - 3;
}

/** The tap name for a slot: the bridge name (at most 8 chars of it) + "t" + slot, within IFNAMSIZ. */
export function tapName(bridge: string, slot: number): string {
  return `${bridge.slice(0, 8)}t${slot}`;
}

export function slotNetwork(config: NetworkConfig, slot: number): SlotNetwork {
  const { base, prefix } = parseSubnet(config.subnet);
  if (!Number.isInteger(slot) || slot < 1 || slot > slotCapacity(config.subnet)) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `slot ${slot} does not fit in ${config.subnet}`);
  }
  return {
    slot,
    tap: tapName(config.bridge, slot),
    // Locally administered unicast (0x52), then "ba" for banger, then the slot.
    mac: `52:54:ba:${((slot >> 16) & 255).toString(16).padStart(2, '0')}:${((slot >> 8) & 255).toString(16).padStart(2, '0')}:${(slot & 255).toString(16).padStart(2, '0')}`,
    guestIp: ipv4(base + slot + 1),
    gatewayIp: ipv4(base + 1),
    prefix,
  };
}

export function gatewayAddress(config: NetworkConfig): string {
  const { base, prefix } = parseSubnet(config.subnet);
  return `${ipv4(base + 1)}/${prefix}`;
}
