import { BangerError, isErrorCode, toBangerError, wireCodeOf, type SerializedError } from './errors.js';

/** A JSON-RPC error object as it travels: numeric code, message, and banger's data. */
export interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

/** Encodes an error thrown by a handler as a JSON-RPC error object. */
export function encodeError(error: unknown, opId: string): WireError & { data: SerializedError } {
  const banger = toBangerError(error);
  banger.opId ??= opId;
  return { code: wireCodeOf(banger.code), message: banger.message, data: banger.toJSON() };
}

function isWireError(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && typeof (value as WireError).code === 'number' && typeof (value as WireError).message === 'string';
}

/** Decodes a JSON-RPC error object back into the BangerError the daemon threw. */
export function decodeError(error: unknown): BangerError {
  if (error instanceof BangerError) return error;
  if (isWireError(error)) {
    const data = error.data as Partial<SerializedError> | undefined;
    if (data !== undefined && isErrorCode(data.code)) {
      return new BangerError(data.code, error.message, { hint: data.hint, opId: data.opId });
    }
    return new BangerError('ERR_INTERNAL', `daemon error ${error.code}: ${error.message}`);
  }
  return toBangerError(error);
}
