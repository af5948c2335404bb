import { inspect } from 'node:util';

import { BangerError, toBangerError } from '../rpc/errors.js';

/** How the user asked for output: global `--json` and `--verbose`. */
export interface OutputOptions {
  json: boolean;
  verbose: boolean;
}

/**
 * The only place the CLI writes to the terminal. Commands hand it data plus a
 * human rendering; `--json` prints the data instead, one JSON document per
 * command on stdout, so scripts never parse prose.
 */
export class Output {
  readonly json: boolean;
  readonly verbose: boolean;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WritableStream;

  constructor(options: OutputOptions, stdout: NodeJS.WritableStream = process.stdout, stderr: NodeJS.WritableStream = process.stderr) {
    this.json = options.json;
    this.verbose = options.verbose;
    this.#stdout = stdout;
    this.#stderr = stderr;
  }

  /** Prints a command's result: `data` as JSON with --json, else `human(data)`. */
  result<T>(data: T, human: (data: T) => string): void {
    if (this.json) this.#stdout.write(JSON.stringify(data, null, 2) + '\n');
    else {
      const text = human(data);
      if (text !== '') this.#stdout.write(text.endsWith('\n') ? text : text + '\n');
    }
  }

  /** A line of human text on stdout (suppressed with --json). */
  line(text: string): void {
    if (!this.json) this.#stdout.write(text + '\n');
  }

  /** A side note for humans on stderr (never pollutes stdout, shown even with --json). */
  notice(text: string): void {
    this.#stderr.write(text + '\n');
  }

  /** Extra detail shown only with --verbose. */
  debug(text: string): void {
    if (this.verbose) this.#stderr.write(text + '\n');
  }

  /**
   * Prints an error: code, message and hint; with --json a JSON object on
   * stdout instead. Stacks only with --verbose or for errors banger did not
   * anticipate (ERR_INTERNAL), which are bugs worth reporting.
   */
  error(thrown: unknown): void {
    const error = toBangerError(thrown);
    if (this.json) {
      this.#stdout.write(JSON.stringify({ error: error.toJSON() }, null, 2) + '\n');
      return;
    }
    const lines = [`error[${error.code}]: ${error.message}`];
    if (error.hint !== undefined) lines.push(`hint: ${error.hint}`);
    if (error.opId !== undefined && (this.verbose || error.code === 'ERR_INTERNAL')) {
      lines.push(`op: ${error.opId} (banger daemon logs --op ${error.opId})`);
    }
    if (this.verbose || error.code === 'ERR_INTERNAL') {
      const original = thrown instanceof BangerError ? thrown.cause : thrown;
      if (original instanceof Error && original.stack !== undefined) lines.push(original.stack);
      else if (original !== undefined) lines.push(inspect(original));
      else if (error.stack !== undefined) lines.push(error.stack);
    }
    this.#stderr.write(lines.join('\n') + '\n');
  }
}
