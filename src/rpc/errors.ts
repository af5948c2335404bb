/**
 * The one user-facing error type. Every failure a user can cause or fix is a
 * BangerError with a stable code, a message saying what went wrong and, when
 * there is something to do about it, a hint. Programmer mistakes stay plain
 * `Error`s and surface as ERR_INTERNAL.
 *
 * On the wire a BangerError travels as a JSON-RPC error whose numeric code is
 * taken from banger's reserved application range (10000-10999, see
 * WIRE_CODES) and whose `data` carries the stable string code, the hint and
 * the op_id of the request that failed.
 */

/** Stable error codes. Never renumber or reuse an entry: scripts match on them. */
export const WIRE_CODES = {
  ERR_INTERNAL: 10000,
  ERR_USAGE: 10001,
  ERR_CANCELLED: 10002,
  ERR_DAEMON_UNREACHABLE: 10010,
  ERR_DAEMON_START_FAILED: 10011,
  ERR_DAEMON_ALREADY_RUNNING: 10012,
  ERR_DAEMON_SHUTTING_DOWN: 10013,
  ERR_RUNTIME_DIR_INSECURE: 10020,
  ERR_STATE_DIR: 10021,
  ERR_CONFIG_INVALID: 10030,
  ERR_STORE_OPEN: 10040,
  ERR_STORE_TOO_NEW: 10041,
  ERR_STORE_MISSING: 10042,
  ERR_STORE_READ_ONLY: 10043,
  ERR_MIGRATION_FAILED: 10044,
  ERR_MIGRATION_DUPLICATE: 10045,
  ERR_UNSUPPORTED_ARCH: 10050,
  ERR_NOT_FOUND: 10060,
  ERR_AMBIGUOUS: 10061,
  ERR_ALREADY_EXISTS: 10062,
  ERR_INVALID_ARGUMENT: 10063,
  ERR_IN_USE: 10064,
  ERR_VM_NOT_RUNNING: 10070,
  ERR_VM_RUNNING: 10071,
  ERR_VM_START_FAILED: 10072,
  ERR_HOST_CAPACITY: 10073,
  ERR_KVM_UNAVAILABLE: 10080,
  ERR_VMM_FAILED: 10081,
  ERR_GUEST_SSH: 10090,
  ERR_HOST_KEY_MISMATCH: 10091,
  ERR_HOST_KEY_UNKNOWN: 10092,
  ERR_DOWNLOAD_FAILED: 10100,
  ERR_VERIFY_FAILED: 10101,
  ERR_HOST_TOOL_MISSING: 10110,
  ERR_HOST_COMMAND_FAILED: 10111,
  ERR_NEEDS_ROOT: 10112,
  ERR_SUBUID_MISSING: 10113,
  ERR_NOT_A_GIT_REPO: 10120,
  ERR_REPO_NO_COMMITS: 10121,
  ERR_REPO_UNSAFE_PATH: 10122,
  ERR_SUBMODULES_NEED_FULL_COPY: 10123,
  ERR_UNKNOWN_COMMIT: 10124,
  ERR_GUEST_PATH_INVALID: 10125,
  ERR_GUEST_GIT_MISSING: 10126,
  ERR_NO_WORKSPACE: 10127,
  ERR_WORKSPACE_DIRTY: 10128,
  ERR_GUEST_COMMAND_FAILED: 10129,
  ERR_HELPER_UNREACHABLE: 10130,
  ERR_HELPER_REFUSED: 10131,
  ERR_HELPER_MISMATCH: 10132,
  ERR_DNS_PORT_IN_USE: 10140,
  ERR_SSH_CONFIG: 10150,
  ERR_REGISTRY_AUTH: 10160,
  ERR_RATE_LIMITED: 10161,
  ERR_IMAGE_INVALID: 10170,
  ERR_IMAGE_UNSAFE: 10171,
} as const;

export type ErrorCode = keyof typeof WIRE_CODES;

export interface BangerErrorOptions {
  hint?: string | undefined;
  cause?: unknown;
  /** The daemon request this error belongs to, when it crossed the RPC boundary. */
  opId?: string | undefined;
}

export class BangerError extends Error {
  override readonly name = 'BangerError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  opId: string | undefined;

  constructor(code: ErrorCode, message: string, options: BangerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.opId = options.opId;
  }

  toJSON(): SerializedError {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.opId === undefined ? {} : { opId: this.opId }),
    };
  }
}

/** The shape of an error in `--json` output and in JSON-RPC error `data`. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  hint?: string;
  opId?: string;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(WIRE_CODES, value);
}

export function wireCodeOf(code: ErrorCode): number {
  return WIRE_CODES[code];
}

/** Converts anything thrown into a BangerError, keeping unknown errors as ERR_INTERNAL. */
export function toBangerError(error: unknown): BangerError {
  if (error instanceof BangerError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new BangerError('ERR_INTERNAL', message, {
    cause: error,
    hint: 'this looks like a bug in banger; rerun with --verbose and report it with `banger daemon logs`',
  });
}

/** True when an error (or its cause chain) is a Node system error with this errno code. */
export function hasErrnoCode(error: unknown, code: string): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if ((current as NodeJS.ErrnoException).code === code) return true;
    current = current.cause;
  }
  return false;
}
