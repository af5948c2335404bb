import { isAbsolute } from 'node:path';

import { BangerError } from '../rpc/errors.js';

/**
 * Validation of RPC params, which arrive untyped off the wire. Each helper
 * returns the typed value or throws ERR_INVALID_ARGUMENT naming the param.
 */

function field(params: unknown, key: string): unknown {
  return typeof params === 'object' && params !== null ? (params as Record<string, unknown>)[key] : undefined;
}

export function requireString(params: unknown, key: string): string {
  const value = field(params, key);
  if (typeof value !== 'string' || value === '') throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be a non-empty string`);
  return value;
}

export function optionalString(params: unknown, key: string): string | undefined {
  const value = field(params, key);
  if (value === undefined) return undefined;
  return requireString(params, key);
}

export function requireAbsolutePath(params: unknown, key: string): string {
  const value = requireString(params, key);
  if (!isAbsolute(value)) throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be an absolute path, got "${value}"`);
  return value;
}

export function optionalAbsolutePath(params: unknown, key: string): string | undefined {
  return field(params, key) === undefined ? undefined : requireAbsolutePath(params, key);
}

export function requireInteger(params: unknown, key: string): number {
  const value = field(params, key);
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be an integer`);
  return value;
}

export function optionalInteger(params: unknown, key: string): number | undefined {
  return field(params, key) === undefined ? undefined : requireInteger(params, key);
}

export function optionalBoolean(params: unknown, key: string): boolean | undefined {
  const value = field(params, key);
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be a boolean`);
  return value;
}

export function requireStringArray(params: unknown, key: string): string[] {
  const value = field(params, key);
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === 'string')) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be an array of strings`);
  }
  return value;
}

/** One of `choices`, or undefined when absent. */
export function optionalChoice<T extends string>(params: unknown, key: string, choices: readonly T[]): T | undefined {
  const value = optionalString(params, key);
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value))
    throw new BangerError('ERR_INVALID_ARGUMENT', `param "${key}" must be one of ${choices.join(', ')}, got "${value}"`);
  return value as T;
}
