import { buildInfo } from '../build-info.js';
import * as net from './host-net.js';
import { check, describe, refused, type HelperPolicy } from './policy.js';

/**
 * The root helper's allow-list: every operation it will perform, with the
 * checks its arguments must pass. Nothing else is reachable: an unknown
 * operation, an unknown or missing argument, or a value outside the caller's
 * policy is refused (ERR_HELPER_REFUSED) before anything runs. banger running
 * as root calls executeOperation in process, so the same checks apply.
 */

export interface HelperHello {
  version: string;
  buildId: string;
  uid: number;
  bridge: string;
  subnet: string;
}

type Args = Record<string, unknown>;

interface Operation {
  /** Argument names, all required. */
  args: readonly string[];
  /** Checks the arguments against the policy and returns the action to perform (nothing runs before every check passed). */
  prepare: (policy: HelperPolicy, args: Args) => () => Promise<unknown>;
}

const NETWORKS = ['isolated', 'shared'] as const;

export const OPERATIONS: Readonly<Record<string, Operation>> = {
  hello: {
    args: [],
    prepare: (policy) => () => {
      const { version, buildId } = buildInfo();
      const hello: HelperHello = { version, buildId, uid: policy.uid, bridge: policy.bridge, subnet: policy.subnet };
      return Promise.resolve(hello);
    },
  },
  'bridge.ensure': {
    args: ['bridge', 'dnsPort'],
    prepare: (policy, a) => {
      check.bridge(policy, a.bridge);
      const port = check.port(a.dnsPort);
      return () => net.ensureBridge(policy, port);
    },
  },
  'bridge.delete': {
    args: ['bridge'],
    prepare: (policy, a) => {
      check.bridge(policy, a.bridge);
      return () => net.deleteBridge(policy);
    },
  },
  'tap.create': {
    args: ['tap', 'uid'],
    prepare: (policy, a) => {
      check.uid(policy, a.uid);
      const tap = check.tap(policy, a.tap);
      return () => net.createTap(policy, tap);
    },
  },
  'tap.delete': {
    args: ['tap'],
    prepare: (policy, a) => {
      const tap = check.tap(policy, a.tap);
      return () => net.deleteTap(policy, tap);
    },
  },
  'tap.attach': {
    args: ['tap', 'guestIp', 'mac', 'network'],
    prepare: (policy, a) => {
      const tap = check.tap(policy, a.tap);
      const guestIp = check.guestIp(policy, a.guestIp);
      const mac = check.mac(a.mac);
      const network = check.oneOf('network', NETWORKS, a.network);
      return () => net.attachTap(policy, tap, guestIp, mac, network);
    },
  },
  'tap.release': {
    args: ['tap'],
    prepare: (policy, a) => {
      const tap = check.tap(policy, a.tap);
      return () => net.releaseTap(policy, tap);
    },
  },
  'nat.set': {
    args: ['guestIp', 'enabled'],
    prepare: (policy, a) => {
      const guestIp = check.guestIp(policy, a.guestIp);
      const enabled = check.boolean('enabled', a.enabled);
      return () => net.setNat(policy, guestIp, enabled);
    },
  },
  'forwarding.enable': {
    args: [],
    prepare: () => () => net.enableForwarding(),
  },
  'resolver.route': {
    args: ['bridge', 'dnsPort'],
    prepare: (policy, a) => {
      check.bridge(policy, a.bridge);
      const port = check.port(a.dnsPort);
      return () => net.routeResolver(policy, port);
    },
  },
  'resolver.revert': {
    args: ['bridge'],
    prepare: (policy, a) => {
      check.bridge(policy, a.bridge);
      return () => net.revertResolver(policy);
    },
  },
  state: {
    args: [],
    prepare: (policy) => () => net.state(policy),
  },
};

/** Checks a request completely (name, argument names, every value against the policy) and returns its action. */
export function prepareOperation(policy: HelperPolicy, op: unknown, args: unknown): () => Promise<unknown> {
  return parseOperation(op, args).prepare(policy, args as Args);
}

/** Checks, then runs, one request. */
export function executeOperation(policy: HelperPolicy, op: unknown, args: unknown): Promise<unknown> {
  return prepareOperation(policy, op, args)();
}

/** The operation named `op` when `args` has exactly its argument names; throws ERR_HELPER_REFUSED otherwise. */
function parseOperation(op: unknown, args: unknown): Operation {
  if (typeof op !== 'string' || !Object.hasOwn(OPERATIONS, op)) {
    throw refused(`unknown operation ${describe(op)}`, `the helper performs only: ${Object.keys(OPERATIONS).join(', ')}`);
  }
  const operation = OPERATIONS[op];
  if (operation === undefined) throw refused(`unknown operation ${op}`);
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw refused(`${op}: arguments must be an object`);
  const given = Object.keys(args);
  const unknown = given.filter((name) => !operation.args.includes(name));
  const missing = operation.args.filter((name) => !given.includes(name));
  if (unknown.length > 0) throw refused(`${op}: unknown argument ${unknown.join(', ')}`);
  if (missing.length > 0) throw refused(`${op}: missing argument ${missing.join(', ')}`);
  return operation;
}
