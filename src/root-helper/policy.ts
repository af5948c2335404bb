import { BangerError } from '../rpc/errors.js';
import { formatIpv4, gatewayOf, isGuestAddress, parseIpv4, parseSubnet, type Subnet } from '../host/ipv4.js';

/**
 * What one user may ask of the root helper: their uid (and primary gid),
 * their bridge, and their subnet. Every argument an operation receives is
 * checked against it; nothing a caller sends widens it. The helper reads
 * policies from its own root-owned config; banger running as root builds one
 * from its own config (the same checks, in process).
 */
export interface HelperPolicy {
  uid: number;
  gid: number;
  bridge: string;
  subnet: string;
}

/** Bridge names banger accepts: an interface name (IFNAMSIZ 15) of letters, digits, `_`, `.`, `-`. */
export const BRIDGE_NAME = /^[a-zA-Z0-9_.-]{1,15}$/;

/** Taps carry the first 8 characters of their bridge's name, `p`, and a number: unique per bridge and within IFNAMSIZ. */
export const MAX_TAP_INDEX = 99_999;

export function tapPrefix(bridge: string): string {
  return `${bridge.slice(0, 8)}p`;
}

export function tapName(bridge: string, index: number): string {
  return `${tapPrefix(bridge)}${index}`;
}

/** The index of a tap of `bridge`, or undefined when the name is not one of its taps. */
export function tapIndex(bridge: string, name: string): number | undefined {
  const prefix = tapPrefix(bridge);
  if (!name.startsWith(prefix)) return undefined;
  const digits = name.slice(prefix.length);
  if (!/^(0|[1-9]\d{0,4})$/.test(digits)) return undefined;
  return Number(digits);
}

/** banger's nftables tables (one in the `ip` family, one in `bridge`) for a bridge. */
export function nftTableName(bridge: string): string {
  return `banger_${bridge.replace(/[^a-zA-Z0-9_]/g, '_')}`;
}

export function refused(message: string, hint?: string): BangerError {
  return new BangerError('ERR_HELPER_REFUSED', message, hint === undefined ? {} : { hint });
}

/** The policy's subnet, parsed; a policy with a malformed subnet is refused whole. */
export function policySubnet(policy: HelperPolicy): Subnet {
  const subnet = parseSubnet(policy.subnet);
  if (subnet === undefined || subnet.prefix < 16 || subnet.prefix > 29) throw refused(`policy subnet ${policy.subnet} is not a /16 to /29 network address`);
  return subnet;
}

/** Checks a policy itself (from the helper's config file, or banger's own config in root mode). */
export function validatePolicy(policy: HelperPolicy): void {
  if (!Number.isInteger(policy.uid) || policy.uid < 0 || !Number.isInteger(policy.gid) || policy.gid < 0)
    throw refused(`policy uid/gid must be non-negative integers`);
  if (!BRIDGE_NAME.test(policy.bridge)) throw refused(`policy bridge ${JSON.stringify(policy.bridge)} is not a valid interface name`);
  policySubnet(policy);
}

/** Argument checks shared by every operation. Each returns the checked value or throws ERR_HELPER_REFUSED. */
export const check = {
  bridge(policy: HelperPolicy, value: unknown): string {
    if (typeof value !== 'string' || value !== policy.bridge) {
      throw refused(
        `bridge ${describe(value)} is not yours: you may use ${policy.bridge}`,
        'the bridge is fixed when the helper is installed (`sudo banger system install`)',
      );
    }
    return value;
  },

  tap(policy: HelperPolicy, value: unknown): string {
    if (typeof value !== 'string' || value.length > 15 || tapIndex(policy.bridge, value) === undefined) {
      throw refused(`tap ${describe(value)} is not a tap of ${policy.bridge} (expected ${tapPrefix(policy.bridge)}<0-${MAX_TAP_INDEX}>)`);
    }
    return value;
  },

  guestIp(policy: HelperPolicy, value: unknown): string {
    const subnet = policySubnet(policy);
    const address = typeof value === 'string' ? parseIpv4(value) : undefined;
    if (address === undefined || !isGuestAddress(subnet, address)) {
      throw refused(`address ${describe(value)} is not a guest address in ${policy.subnet}`);
    }
    return formatIpv4(address);
  },

  uid(policy: HelperPolicy, value: unknown): number {
    if (value !== policy.uid) throw refused(`uid ${describe(value)} is not the caller's (${policy.uid})`);
    return policy.uid;
  },

  /** A guest MAC as banger makes them: locally administered 52:54:ba, then three bytes (lowercase). */
  mac(value: unknown): string {
    if (typeof value !== 'string' || !/^52:54:ba(:[0-9a-f]{2}){3}$/.test(value))
      throw refused(`mac ${describe(value)} is not a banger guest MAC (52:54:ba:xx:xx:xx)`);
    return value;
  },

  port(value: unknown): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1024 || value > 65_535) {
      throw refused(`port ${describe(value)} must be an unprivileged port (1024-65535)`);
    }
    return value;
  },

  oneOf<T extends string>(what: string, allowed: readonly T[], value: unknown): T {
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
      throw refused(`${what} ${describe(value)} must be one of ${allowed.join(', ')}`);
    return value as T;
  },

  boolean(what: string, value: unknown): boolean {
    if (typeof value !== 'boolean') throw refused(`${what} must be true or false, got ${describe(value)}`);
    return value;
  },
};

/** The gateway address of the policy's subnet with its prefix (e.g. 172.30.0.1/24). */
export function gatewayCidr(policy: HelperPolicy): string {
  const subnet = policySubnet(policy);
  return `${formatIpv4(gatewayOf(subnet))}/${subnet.prefix}`;
}

/** A value as it may appear in a refusal: JSON, cut short. */
export function describe(value: unknown): string {
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
