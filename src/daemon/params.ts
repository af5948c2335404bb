import { parseParams } from '../rpc/method-params.js';
import type { MethodKey } from '../rpc/methods.js';
import type { DaemonHandlers, OpContext } from './rpc-server.js';

/**
 * RPC params arrive untyped off the wire. `withCheckedParams` runs every
 * request's params through its method's schema (src/rpc/method-params.ts)
 * before the handler sees them, so handlers get exactly the typed params
 * their signature promises: known fields only, each valid, or the request
 * fails with ERR_INVALID_ARGUMENT naming the param and nothing is done.
 */
export function withCheckedParams(handlers: DaemonHandlers): DaemonHandlers {
  const checked: Record<string, (params: unknown, ctx: OpContext) => Promise<unknown>> = {};
  for (const key of Object.keys(handlers) as MethodKey[]) {
    const handler = handlers[key] as (params: unknown, ctx: OpContext) => Promise<unknown>;
    checked[key] = async (params, ctx) => handler(parseParams(key, params), ctx);
  }
  return checked as DaemonHandlers;
}
