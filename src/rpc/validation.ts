/**
 * The building blocks of banger's input rules (see ./schemas.ts for the rules
 * themselves). A rule checks one value and either returns it typed or says
 * what is wrong with it; it never throws and never decides who is at fault.
 * Each caller words the failure for its audience: the daemon names the RPC
 * param (`param "vcpu" must be …`), config.toml names the key
 * (`vm_defaults.vcpu: must be …`), the CLI names the option. So one rule, one
 * wording of what is accepted, everywhere.
 *
 * Pure and dependency-free (only ./errors.js), so that an SDK can import it.
 */

import { BangerError, type ErrorCode } from './errors.js';

/** What is wrong with a value. */
export interface Problem {
  /**
   * What is wrong, worded to follow the name of the value: `must be an
   * integer from 1 to 64, got 0`. When `standalone`, it is a sentence of its
   * own that names the value instead: `"Box" is not a valid VM name`.
   */
  readonly detail: string;
  readonly standalone: boolean;
  /** What to do about it, when there is something to say beyond `detail`. */
  readonly hint: string | undefined;
}

export type Checked<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: Problem };

export interface Rule<T> {
  /** What is accepted, as a phrase that follows "must be": `an integer from 1 to 64`. */
  readonly expects: string;
  /** Checks a JSON value: an RPC param, a config.toml value. */
  check(value: unknown): Checked<T>;
}

/** A rule whose values can also be typed as text (a command-line option, a size string in config.toml). */
export interface TextRule<T> extends Rule<T> {
  parse(text: string): Checked<T>;
}

/** The longest a value is quoted in a message: a 10 MB name must not come back as a 10 MB error. */
const MAX_QUOTED = 48;

/**
 * A value as messages show it: strings JSON-quoted (so control characters and
 * escape sequences are visible, not interpreted by a terminal) and cut short
 * when long, saying how long they were.
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    if (value.length <= MAX_QUOTED) return JSON.stringify(value);
    return `${JSON.stringify(value.slice(0, MAX_QUOTED))}… (${value.length} characters)`;
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value;
}

export function ok<T>(value: T): Checked<T> {
  return { ok: true, value };
}

/** The usual failure: `must be <expects>, got <value>`. */
export function mustBe<T>(expects: string, value: unknown, hint?: string): Checked<T> {
  return { ok: false, problem: { detail: `must be ${expects}, got ${describeValue(value)}`, standalone: false, hint } };
}

/** A failure worded as a sentence of its own: `"Box" is not a valid VM name`. */
export function invalid<T>(detail: string, hint?: string): Checked<T> {
  return { ok: false, problem: { detail, standalone: true, hint } };
}

/** The full message for a problem with the value called `subject` (`param "vcpu"`, `vcpu`). */
export function sentence(problem: Problem, subject: string): string {
  return problem.standalone ? problem.detail : `${subject} ${problem.detail}`;
}

/** The checked value, or a BangerError (ERR_INVALID_ARGUMENT unless told otherwise) for the value called `subject`. */
export function mustPass<T>(checked: Checked<T>, subject: string, code: ErrorCode = 'ERR_INVALID_ARGUMENT'): T {
  if (checked.ok) return checked.value;
  return failWith(checked.problem, subject, code);
}

function failWith(problem: Problem, subject: string, code: ErrorCode): never {
  throw new BangerError(code, sentence(problem, subject), { hint: problem.hint });
}

/** Whole decimal digits only: no sign, exponent, hex or surrounding space (which `Number()` would accept). */
const DECIMAL = /^[0-9]{1,15}$/;

/** An integer in [min, max]; as text, plain decimal digits. */
export function integer(min: number, max: number, hint?: string): TextRule<number> {
  const expects = `an integer from ${min} to ${max}`;
  const check = (value: unknown): Checked<number> =>
    typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max ? ok(value) : mustBe(expects, value, hint);
  return {
    expects,
    check,
    parse: (text) => {
      const checked = DECIMAL.test(text) ? check(Number(text)) : undefined;
      return checked?.ok === true ? checked : mustBe(expects, text, hint);
    },
  };
}

/** One of a fixed list of strings. */
export function choice<const T extends string>(choices: readonly T[]): TextRule<T> & { readonly choices: readonly T[] } {
  const expects = `one of ${choices.join(', ')}`;
  const check = (value: unknown): Checked<T> =>
    typeof value === 'string' && (choices as readonly string[]).includes(value) ? ok(value as T) : mustBe(expects, value);
  return { expects, choices, check, parse: check };
}

export const boolean: Rule<boolean> = {
  expects: 'true or false',
  check: (value) => (typeof value === 'boolean' ? ok(value) : mustBe('true or false', value)),
};

/**
 * A string of 1 to `maxLength` characters with no control characters (no
 * NUL, newline or escape: nothing banger takes as text may smuggle them into
 * a log line, a terminal or a C string), optionally matching `pattern`.
 */
export function text(options: { maxLength: number; expects?: string; pattern?: RegExp; hint?: string }): TextRule<string> {
  const expects = options.expects ?? `a string of 1 to ${options.maxLength} characters without control characters`;
  const check = (value: unknown): Checked<string> => {
    if (typeof value !== 'string' || value.length === 0 || value.length > options.maxLength || hasControl(value)) return mustBe(expects, value, options.hint);
    if (options.pattern !== undefined && !options.pattern.test(value)) return mustBe(expects, value, options.hint);
    return ok(value);
  };
  return { expects, check, parse: check };
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
const CONTROL = /[\u0000-\u001f\u007f]/;

export function hasControl(value: string): boolean {
  return CONTROL.test(value);
}

/** An array of values each passing `item`, with at least `minItems`. */
export function arrayOf<T>(item: Rule<T>, options: { minItems: number; expects: string }): Rule<T[]> {
  return {
    expects: options.expects,
    check: (value) => {
      if (!Array.isArray(value) || value.length < options.minItems) return mustBe(options.expects, value);
      for (const [index, element] of (value as unknown[]).entries()) {
        const checked = item.check(element);
        if (!checked.ok) {
          const { detail, standalone, hint } = checked.problem;
          return {
            ok: false,
            problem: { detail: standalone ? `has an invalid item ${index}: ${detail}` : `item ${index} ${detail}`, standalone: false, hint },
          };
        }
      }
      return ok(value as T[]);
    },
  };
}
