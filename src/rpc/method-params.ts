/**
 * The params every method takes, as rules (./schemas.ts), beside the types in
 * ./methods.ts. The compiler holds the two together: each method's schema
 * must list exactly the fields of its params type, each optional field
 * marked optional, so a param added to a type and not here does not build.
 *
 * `parseParams` is what the daemon runs on every request before its handler:
 * params arrive untyped off the wire. It refuses params that are not an
 * object, unknown params (a typo must not silently do nothing: `nmae` would
 * otherwise create a VM with a generated name), missing ones and malformed
 * ones, each with ERR_INVALID_ARGUMENT naming the param.
 */

import { BangerError } from './errors.js';
import type { MethodKey, ParamsOf } from './methods.js';
import { DAEMON_EVENT_KINDS, methods } from './methods.js';
import {
  ABSOLUTE_PATH,
  BUNDLE_FILE,
  BUNDLE_SOURCE,
  COMMAND_ARG,
  DISK_SIZE_BYTES,
  IMAGE_NAME,
  IMAGE_PULL_SOURCE,
  IMAGE_SOURCE,
  INIT_MODE,
  KERNEL_NAME,
  LOG_LINES,
  MEMORY_MIB,
  NETWORK_MODE,
  PROGRESS_TOKEN,
  REF,
  SHA256_HEX,
  SHORT_TEXT,
  SLEEP_MS,
  STREAM_TOKEN,
  TTY_DIMENSION,
  TTY_TERM,
  VCPU,
  VM_NAME,
  WORKSPACE_MODE,
} from './schemas.js';
import { arrayOf, boolean, choice, describeValue, mustBe, ok, sentence, type Checked, type Rule } from './validation.js';

interface RequiredField<T> {
  readonly rule: Rule<T>;
  readonly optional: false;
}

interface OptionalField<T> {
  readonly rule: Rule<T>;
  readonly optional: true;
}

type FieldFor<P, F extends keyof P> = object extends Pick<P, F> ? OptionalField<Exclude<P[F], undefined>> : RequiredField<P[F]>;

/** A rule per field of `P`, optional exactly where `P` is. */
export type ParamsSchema<P> = { readonly [F in keyof P]-?: FieldFor<P, F> };

const required = <T>(rule: Rule<T>): RequiredField<T> => ({ rule, optional: false });
const optional = <T>(rule: Rule<T>): OptionalField<T> => ({ rule, optional: true });

type MethodSchemas = { readonly [K in MethodKey]: ParamsSchema<ParamsOf<K>> };

const progressToken = optional(PROGRESS_TOKEN);
const ref = required(REF);
const byRef = { ref, progressToken };

const TTY_FIELDS = { cols: TTY_DIMENSION, rows: TTY_DIMENSION, term: TTY_TERM } as const;

/** A terminal to allocate: `{cols, rows, term}`, each required, nothing else. */
const TTY: Rule<{ cols: number; rows: number; term: string }> = {
  expects: 'a terminal {"cols": <integer>, "rows": <integer>, "term": <string>}',
  check: (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return mustBe(TTY.expects, value);
    const fields = value as Record<string, unknown>;
    const unknown = Object.keys(fields).find((name) => !Object.hasOwn(TTY_FIELDS, name));
    if (unknown !== undefined) return fieldProblem(`has an unknown field ${describeValue(unknown)} (it takes cols, rows and term)`);
    const parsed: Record<string, unknown> = {};
    for (const [name, rule] of Object.entries(TTY_FIELDS)) {
      if (fields[name] === undefined) return fieldProblem(`needs field "${name}" (${rule.expects})`);
      const checked = rule.check(fields[name]);
      if (!checked.ok) return fieldProblem(`field "${name}" ${checked.problem.detail}`);
      parsed[name] = checked.value;
    }
    return ok(parsed as { cols: number; rows: number; term: string });
  },
};

function fieldProblem<T>(detail: string): Checked<T> {
  return { ok: false, problem: { detail, standalone: false, hint: undefined } };
}

export const METHOD_PARAMS: MethodSchemas = {
  ping: {},
  shutdown: {},
  sleep: { ms: required(SLEEP_MS) },

  kernelList: {},
  kernelCatalog: {},
  kernelShow: { ref },
  kernelPull: { name: optional(KERNEL_NAME), source: optional(BUNDLE_SOURCE), sha256: optional(SHA256_HEX), progressToken },
  kernelExport: { ref, path: required(BUNDLE_FILE), force: optional(boolean), progressToken },
  kernelImport: { name: required(KERNEL_NAME), kernelPath: required(ABSOLUTE_PATH), modulesDir: optional(ABSOLUTE_PATH), progressToken },
  kernelDelete: { ref },

  imageList: {},
  imageCatalog: {},
  imageShow: { ref },
  imagePull: { source: required(IMAGE_PULL_SOURCE), name: optional(IMAGE_NAME), kernel: optional(REF), sha256: optional(SHA256_HEX), progressToken },
  imageExport: { ref, path: required(BUNDLE_FILE), force: optional(boolean), progressToken },
  imageRegister: { name: required(IMAGE_NAME), rootfs: required(ABSOLUTE_PATH), kernel: required(REF) },
  imagePromote: byRef,
  imageDelete: { ref },

  vmCreate: {
    name: optional(VM_NAME),
    image: optional(IMAGE_SOURCE),
    vcpu: optional(VCPU),
    memoryMiB: optional(MEMORY_MIB),
    diskSizeBytes: optional(DISK_SIZE_BYTES),
    init: optional(INIT_MODE),
    nat: optional(boolean),
    network: optional(NETWORK_MODE),
    noStart: optional(boolean),
    progressToken,
  },
  vmList: {},
  vmShow: byRef,
  vmStart: byRef,
  vmStop: byRef,
  vmRestart: byRef,
  vmKill: byRef,
  vmDelete: byRef,
  vmDefaults: {},
  vmStats: { ref: optional(REF) },
  vmPorts: byRef,
  events: {
    subscriptionToken: required(PROGRESS_TOKEN),
    kinds: optional(arrayOf(choice(DAEMON_EVENT_KINDS), { minItems: 1, expects: `a non-empty array of event kinds (${DAEMON_EVENT_KINDS.join(', ')})` })),
  },
  vmSet: { ref, vcpu: optional(VCPU), memoryMiB: optional(MEMORY_MIB), diskSizeBytes: optional(DISK_SIZE_BYTES), nat: optional(boolean) },
  vmLogs: { ref, lines: optional(LOG_LINES), progressToken },
  vmSshTarget: byRef,
  vmExec: {
    ref,
    command: required(arrayOf(COMMAND_ARG, { minItems: 1, expects: 'a non-empty array of strings (the argv)' })),
    tty: optional(TTY),
    autoPrepare: optional(boolean),
    streamToken: required(STREAM_TOKEN),
    progressToken,
  },
  workspacePrepare: {
    ref,
    sourcePath: required(ABSOLUTE_PATH),
    guestPath: optional(SHORT_TEXT),
    mode: optional(WORKSPACE_MODE),
    includeUntracked: optional(boolean),
    branch: optional(SHORT_TEXT),
    from: optional(SHORT_TEXT),
    force: optional(boolean),
    progressToken,
  },
  workspaceExport: { ref, streamToken: required(STREAM_TOKEN), baseCommit: optional(SHORT_TEXT), stat: optional(boolean) },
};

/**
 * The params of a call to `key`, checked against its schema and typed; only
 * known fields are kept. Absent params (JSON-RPC allows leaving them out) are
 * checked as `{}`, so a required one is reported missing by name; anything
 * else that is not an object (positional params, null) is refused. Throws
 * ERR_INVALID_ARGUMENT naming the param at fault.
 */
export function parseParams<K extends MethodKey>(key: K, raw: unknown): ParamsOf<K> {
  const schema: Record<string, RequiredField<unknown> | OptionalField<unknown>> = METHOD_PARAMS[key];
  return parseFields(methods[key].name, schema, raw === undefined ? {} : raw) as ParamsOf<K>;
}

/** The names of the params `key` takes (for messages and an SDK's docs). */
export function paramNames(key: MethodKey): string[] {
  return Object.keys(METHOD_PARAMS[key]);
}

function parseFields(owner: string, schema: Record<string, RequiredField<unknown> | OptionalField<unknown>>, raw: unknown): object {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `${owner} takes named params (a JSON object), got ${describeValue(raw)}`, {
      hint: 'send params as an object, e.g. {"ref": "box"}',
    });
  }
  const known = Object.keys(schema);
  for (const name of Object.keys(raw)) {
    if (!Object.hasOwn(schema, name)) {
      throw new BangerError('ERR_INVALID_ARGUMENT', `unknown param ${describeValue(name)} for ${owner}`, {
        hint: known.length === 0 ? `${owner} takes no params` : `${owner} takes: ${known.join(', ')}`,
      });
    }
  }
  const parsed: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema)) {
    const value = (raw as Record<string, unknown>)[name];
    const subject = `param "${name}"`;
    if (value === undefined) {
      if (!field.optional) throw new BangerError('ERR_INVALID_ARGUMENT', `${subject} is required`, { hint: `it must be ${field.rule.expects}` });
      continue;
    }
    const checked = field.rule.check(value);
    if (!checked.ok) throw new BangerError('ERR_INVALID_ARGUMENT', sentence(checked.problem, subject), { hint: checked.problem.hint });
    parsed[name] = checked.value;
  }
  return parsed;
}
