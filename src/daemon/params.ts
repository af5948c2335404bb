import { BangerError } from '../rpc/errors.js';
import { parseParams } from '../rpc/method-params.js';
import type { MethodKey } from '../rpc/methods.js';
import { ABSOLUTE_PATH } from '../rpc/schemas.js';
import { describeValue, mustPass } from '../rpc/validation.js';
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

/*
 * Field helpers for a handler that still checks its own params (see
 * CHECKED_BY_HANDLER in src/rpc/method-params.ts). Each returns the typed
 * value or throws ERR_INVALID_ARGUMENT naming the param.
 */

function field(params: unknown, key: string): unknown {
  return typeof params === 'object' && params !== null ? (params as Record<string, unknown>)[key] : undefined;
}

export function requireString(params: unknown, key: string): string {
  const value = field(params, key);
  if (typeof value !== 'string' || value === '')
    throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be a non-empty string, got ${describeValue(value)}`);
  return value;
}

export function optionalString(params: unknown, key: string): string | undefined {
  const value = field(params, key);
  if (value === undefined) return undefined;
  return requireString(params, key);
}

export function requireAbsolutePath(params: unknown, key: string): string {
  return mustPass(ABSOLUTE_PATH.check(field(params, key)), `param "${key}"`);
}

export function optionalAbsolutePath(params: unknown, key: string): string | undefined {
  return field(params, key) === undefined ? undefined : requireAbsolutePath(params, key);
}

export function requireInteger(params: unknown, key: string): number {
  const value = field(params, key);
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be an integer, got ${describeValue(value)}`);
  return value;
}

export function optionalInteger(params: unknown, key: string): number | undefined {
  return field(params, key) === undefined ? undefined : requireInteger(params, key);
}

export function optionalBoolean(params: unknown, key: string): boolean | undefined {
  const value = field(params, key);
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be a boolean, got ${describeValue(value)}`);
  return value;
}

export function requireStringArray(params: unknown, key: string): string[] {
  const value = field(params, key);
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === 'string')) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be an array of strings, got ${describeValue(value)}`);
  }
  return value;
}

/** One of `choices`, or undefined when absent. */
export function optionalChoice<T extends string>(params: unknown, key: string, choices: readonly T[]): T | undefined {
  const value = optionalString(params, key);
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value))
    throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be one of ${choices.join(', ')}, got ${describeValue(value)}`);
  return value as T;
}
