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
import { choice, describeValue, hasControl, integer, invalid, mustBe, ok, text, type Checked, type Rule, type TextRule } from './validation.js';

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

const IMAGE_SOURCE_HINT = 'list images with `banger image list`; registry references are written as for docker pull';

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
  hint: IMAGE_SOURCE_HINT,
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

/** What a bundle's file name ends with: a tar of named files, compressed with zstd (see services/image/bundle.ts). */
export const BUNDLE_SUFFIX = '.tar.zst';

/** Whether text is written as a URL (`scheme://…`) rather than a name, reference or path. */
export function isUrlLike(value: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value);
}

const BUNDLE_HINT = 'a bundle is a .tar.zst made by `banger image export` or `banger kernel export`';

/**
 * Where a bundle is pulled from: the absolute path of a `.tar.zst` file (read
 * by the daemon, which has no working directory of yours), or an http(s) URL
 * whose path ends in `.tar.zst` (without credentials in it: they would end up
 * in logs, and fetch refuses them). The daemon checks the file itself.
 */
export const BUNDLE_SOURCE: TextRule<string> = {
  expects: `the absolute path or http(s) URL of a ${BUNDLE_SUFFIX} bundle`,
  check: (value) => {
    if (typeof value !== 'string' || value.length === 0 || value.length > PATH_MAX - 1 || hasControl(value)) {
      return mustBe(BUNDLE_SOURCE.expects, value, BUNDLE_HINT);
    }
    if (isUrlLike(value)) return bundleUrl(value);
    if (!value.endsWith(BUNDLE_SUFFIX)) return invalid(`${describeValue(value)} is not a ${BUNDLE_SUFFIX} bundle`, BUNDLE_HINT);
    if (!value.startsWith('/')) {
      return invalid(
        `${describeValue(value)} is a relative path`,
        'bundle files are read by the daemon, which has no working directory of yours: pass an absolute path',
      );
    }
    return ok(value);
  },
  parse: (input) => BUNDLE_SOURCE.check(input),
};

function bundleUrl(value: string): Checked<string> {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return invalid(`${describeValue(value)} is not a valid URL`, BUNDLE_HINT);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return invalid(`${describeValue(value)} is not an http or https URL`, BUNDLE_HINT);
  if (url.username !== '' || url.password !== '') {
    return invalid(`${describeValue(value)} carries credentials`, 'put no user or password in a bundle URL; the sha256 is what makes a download trusted');
  }
  if (!url.pathname.endsWith(BUNDLE_SUFFIX)) return invalid(`${describeValue(value)} does not name a ${BUNDLE_SUFFIX} bundle`, BUNDLE_HINT);
  return ok(value);
}

/** Whether an image or kernel source is a bundle (a path or URL; BUNDLE_SOURCE says whether it is a usable one). */
export function isBundleSource(value: string): boolean {
  return isUrlLike(value) || value.startsWith('/') || value.endsWith(BUNDLE_SUFFIX);
}

/**
 * What `image pull` takes: what IMAGE_SOURCE accepts (a catalog name, an
 * image here, a registry reference), or a bundle (BUNDLE_SOURCE). vm.create's
 * image stays IMAGE_SOURCE: a VM is created from an image, not a file.
 */
export const IMAGE_PULL_SOURCE: TextRule<string> = {
  expects: `${IMAGE_SOURCE.expects}, or the absolute path or http(s) URL of a ${BUNDLE_SUFFIX} bundle`,
  check: (value) => {
    if (typeof value === 'string' && isBundleSource(value)) return BUNDLE_SOURCE.check(value);
    const checked = IMAGE_SOURCE.check(value);
    return checked.ok ? checked : mustBe(IMAGE_PULL_SOURCE.expects, value, IMAGE_SOURCE_HINT);
  },
  parse: (input) => IMAGE_PULL_SOURCE.check(input),
};

/** A sha256 as sha256sum prints it: 64 hex digits (either case; kept in lowercase). */
export const SHA256_HEX: TextRule<string> = {
  expects: 'a sha256 of 64 hex digits',
  check: (value) =>
    typeof value === 'string' && /^[0-9a-fA-F]{64}$/.test(value)
      ? ok(value.toLowerCase())
      : mustBe('a sha256 of 64 hex digits', value, 'give it as sha256sum prints it (`banger image export` prints it too)'),
  parse: (input) => SHA256_HEX.check(input),
};

/** A bundle file to write (`image export`, `kernel export`): an absolute path ending in `.tar.zst`, so that `pull` takes it back. */
export const BUNDLE_FILE: TextRule<string> = {
  expects: `an absolute path ending in ${BUNDLE_SUFFIX}`,
  check: (value) => {
    const checked = ABSOLUTE_PATH.check(value);
    if (!checked.ok) return checked;
    if (!checked.value.endsWith(BUNDLE_SUFFIX)) {
      return invalid(
        `${describeValue(checked.value)} does not end in ${BUNDLE_SUFFIX}`,
        `name the bundle <something>${BUNDLE_SUFFIX}: pull takes only such files`,
      );
    }
    return checked;
  },
  parse: (input) => BUNDLE_FILE.check(input),
};

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
