import { ResponseError } from 'vscode-jsonrpc/node';

import { BangerError, isErrorCode, toBangerError, wireCodeOf, type SerializedError } from './errors.js';

/** Encodes an error thrown by a handler as a JSON-RPC error response. */
export function encodeError(error: unknown, opId: string): ResponseError<SerializedError> {
  const banger = toBangerError(error);
  banger.opId ??= opId;
  return new ResponseError(wireCodeOf(banger.code), banger.message, banger.toJSON());
}

/** Decodes a JSON-RPC error response back into the BangerError the daemon threw. */
export function decodeError(error: unknown): BangerError {
  if (error instanceof ResponseError) {
    const data = error.data as Partial<SerializedError> | undefined;
    if (data !== undefined && isErrorCode(data.code)) {
      return new BangerError(data.code, error.message, { hint: data.hint, opId: data.opId });
    }
    return new BangerError('ERR_INTERNAL', `daemon error ${error.code}: ${error.message}`);
  }
  return toBangerError(error);
}
