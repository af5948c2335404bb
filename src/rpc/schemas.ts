/**
 * banger's input rules, written once: what a VM spec, a name, a reference or
 * a path may be. The CLI parses options with them, the daemon checks RPC
 * params with them (./method-params.ts), the VM service re-checks a spec with
 * them, and config.toml validates its keys with them; an SDK can import the
 * same module. Every rule says what it accepts (`expects`), and its failures
 * say what was given and, where it helps, what to do (see ./validation.ts).
 */

import { STREAM_TOKEN_PATTERN } from './stream.js';
import { parseSizeOrUndefined } from './sizes.js';
import { choice, describeValue, integer, invalid, mustBe, ok, text, type Checked, type Rule, type TextRule } from './validation.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

export const VCPU_MIN = 1;
export const VCPU_MAX = 64;
/** Below this the guest kernel and sshd do not come up. */
export const MEMORY_MIB_MIN = 128;
export const MEMORY_MIB_MAX = 1024 * 1024;
export const DISK_BYTES_MIN = GiB;
/**
 * The work disk is a sparse file on the host: 8 TiB keeps it well inside the
 * largest file ext4 holds (16 TiB with 4 KiB blocks), so a typo fails here
 * and not half-way through making the disk.
 */
export const DISK_BYTES_MAX = 8 * TiB;

/** Virtual CPUs of a VM. */
export const VCPU: TextRule<number> = integer(VCPU_MIN, VCPU_MAX);

const MEMORY_EXPECTS = `MiB from ${MEMORY_MIB_MIN} to ${MEMORY_MIB_MAX} (a whole number of MiB, or a size like "2G")`;
const MEMORY_HINT = 'give MiB (2048) or a size with a unit (512M, 2G)';

function memoryMiB(value: unknown): Checked<number> {
  return typeof value === 'number' && Number.isInteger(value) && value >= MEMORY_MIB_MIN && value <= MEMORY_MIB_MAX
    ? ok(value)
    : mustBe(MEMORY_EXPECTS, value, MEMORY_HINT);
}

/** Guest memory in MiB: an integer on the wire; as text, MiB ("2048") or a size ("2G") that is whole MiB. */
export const MEMORY_MIB: TextRule<number> = {
  expects: MEMORY_EXPECTS,
  check: memoryMiB,
  parse: (input) => {
    const bytes = /^[0-9]{1,15}$/.test(input) ? Number(input) * MiB : parseSizeOrUndefined(input);
    const checked = bytes !== undefined && bytes % MiB === 0 ? memoryMiB(bytes / MiB) : undefined;
    // The message shows what was typed, not what it was read as.
    return checked?.ok === true ? checked : mustBe(MEMORY_EXPECTS, input, MEMORY_HINT);
  },
};

const DISK_EXPECTS = 'a size from 1G to 8T';
const DISK_HINT = 'give a size with a unit, like 8G';

function diskBytes(value: unknown, shown: unknown): Checked<number> {
  return typeof value === 'number' && Number.isInteger(value) && value >= DISK_BYTES_MIN && value <= DISK_BYTES_MAX
    ? ok(value)
    : mustBe(`${DISK_EXPECTS}${typeof shown === 'number' ? ' in bytes' : ''}`, shown, DISK_HINT);
}

/** The work disk (/root): bytes on the wire; as text, a size with a unit (a bare number is refused: bytes? MiB?). */
export const DISK_SIZE_BYTES: TextRule<number> = {
  expects: DISK_EXPECTS,
  check: (value) => diskBytes(value, value),
  parse: (input) => diskBytes(parseSizeOrUndefined(input), input),
};

export const INIT_MODES = ['minimal', 'systemd'] as const;
export type InitMode = (typeof INIT_MODES)[number];
/** minimal: sshd under banger's small init; systemd: the image's own. */
export const INIT_MODE = choice(INIT_MODES);

export const NETWORK_MODES = ['isolated', 'shared'] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];
/** isolated: the guest reaches no other guest; shared: it reaches the others on the shared network. */
export const NETWORK_MODE = choice(NETWORK_MODES);

export const WORKSPACE_MODES = ['shallow', 'full_copy'] as const;
/** How a workspace's git metadata reaches the guest. */
export type WorkspaceMode = (typeof WORKSPACE_MODES)[number];
export const WORKSPACE_MODE = choice(WORKSPACE_MODES);

/** A name rule: the pattern, and how a failure names what the value was meant to be. */
function nameRule(pattern: RegExp, what: string, hint: string): TextRule<string> {
  const check = (value: unknown): Checked<string> => {
    if (typeof value !== 'string') return mustBe(`a string (a ${what})`, value, hint);
    if (!pattern.test(value)) return invalid(`${describeValue(value)} is not a valid ${what}`, hint);
    return ok(value);
  };
  return { expects: `a ${what}`, check, parse: check };
}

/** VM names are DNS labels: they become the guest's hostname and `<name>.vm`. */
export const VM_NAME = nameRule(
  /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  'VM name',
  'use 1-63 lowercase letters, digits and dashes, starting and ending with a letter or digit (it becomes the hostname)',
);

const OBJECT_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const OBJECT_NAME_HINT = 'use 1-63 lowercase letters, digits, dots and dashes, starting and ending with a letter or digit';
/** Image names (catalog, registered, default_image in config.toml). */
export const IMAGE_NAME = nameRule(OBJECT_NAME, 'image name', OBJECT_NAME_HINT);
/** Kernel names (catalog, imported). */
export const KERNEL_NAME = nameRule(OBJECT_NAME, 'kernel name', OBJECT_NAME_HINT);

/**
 * How a user refers to a VM, image or kernel: its name or id, or a unique
 * prefix of either. Names are at most 63 characters of [a-z0-9.-] and ids are
 * hex, so anything else can never match: it is refused as malformed rather
 * than looked up (and a 10 MB "ref" is not echoed back in a not-found error).
 */
export const REF: TextRule<string> = text({
  maxLength: 63,
  pattern: /^[a-z0-9][a-z0-9.-]*$/,
  expects: 'a name or id, or a unique prefix of either (up to 63 lowercase letters, digits, dots and dashes)',
  hint: 'list names and ids with `banger vm list`, `banger image list` or `banger kernel list`',
});

/**
 * What an image is asked for by (`vm create --image`, `image pull`): a ref as
 * above, or a registry reference as docker writes it (`debian:bookworm`,
 * `localhost:5000/team/dev:1`, `ghcr.io/org/img@sha256:…`). Only the shape
 * is checked here; the image service parses references fully.
 */
export const IMAGE_SOURCE: TextRule<string> = text({
  maxLength: 512,
  pattern: /^(?!.*(^|\/)\.\.?(\/|$))[a-z0-9[][A-Za-z0-9._:/@[\]-]*$/,
  expects: 'an image name or id, or a registry reference like debian:bookworm or localhost:5000/team/dev:1',
  hint: 'list images with `banger image list`; registry references are written as for docker pull',
});

/** Linux's PATH_MAX, counting the terminating NUL. */
const PATH_MAX = 4096;

/** An absolute host path, as the daemon reads it (no NUL: the kernel's paths are C strings). */
export const ABSOLUTE_PATH: TextRule<string> = text({
  maxLength: PATH_MAX - 1,
  pattern: /^\//,
  expects: 'an absolute path (starting with /, without control characters)',
  hint: 'paths are read by the daemon, which has no working directory of yours: pass absolute paths',
});

/** Free text banger passes on to a tool that checks it further (a git ref, a guest path). */
export const SHORT_TEXT: TextRule<string> = text({ maxLength: 1024 });

/** A token naming a request's byte stream (see ./stream.ts). */
export const STREAM_TOKEN: TextRule<string> = text({ maxLength: 32, pattern: STREAM_TOKEN_PATTERN, expects: 'a stream token of 32 hex digits' });

/** A token the client picks to recognise the progress notifications of its request. */
export const PROGRESS_TOKEN: TextRule<string> = text({
  maxLength: 64,
  pattern: /^[A-Za-z0-9_.:-]+$/,
  expects: 'a progress token of 1 to 64 letters, digits, "_", ".", ":" or "-"',
});

/** One argument of a guest command: any text but NUL, which no argv can carry. */
export const COMMAND_ARG: Rule<string> = {
  expects: 'a string without NUL bytes',
  check: (value) => (typeof value === 'string' && !value.includes('\0') ? ok(value) : mustBe('a string without NUL bytes', value)),
};

/** Terminal sizes a client may ask for; larger or smaller values are clamped to this range. */
export const TTY_DIMENSION = integer(0, 100_000);
/** $TERM as the client has it (even empty); a value that is not a plain terminal name (TERM_NAME) means xterm. */
export const TTY_TERM: Rule<string> = {
  expects: 'a string of at most 256 characters ($TERM)',
  check: (value) => (typeof value === 'string' && value.length <= 256 ? ok(value) : mustBe('a string of at most 256 characters ($TERM)', value)),
};
export const TERM_NAME = /^[A-Za-z0-9._+-]{1,64}$/;

/** How many lines of a VM's console `vm logs` shows (the last ones). */
export const LOG_LINES = integer(1, 100_000);
/** What `vm logs` shows when not told. */
export const LOG_LINES_DEFAULT = 100;

/** How long `debug.sleep` may hold a request open. */
export const SLEEP_MS = integer(0, 10 * 60 * 1000);
