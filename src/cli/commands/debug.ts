import { Command, InvalidArgumentError, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { createContext } from '../context.js';

/**
 * Hidden diagnostics. `debug sleep` holds a daemon request open for a while:
 * it shows (and the integration tests prove) that the daemon starts on
 * demand, serves clients concurrently, and cancels a request's work when its
 * client hits Ctrl-C or goes away.
 */
export function debugCommand(): CommandUnknownOpts {
  const debug = new Command('debug').description('Diagnostics for banger developers');
  debug
    .command('sleep')
    .description('Hold a daemon request open for <ms> milliseconds (Ctrl-C cancels it)')
    .argument('<ms>', 'milliseconds', parseMs)
    .action(async (ms, _options, command) => {
      const cli = createContext(command);
      const result = await cli.call('sleep', { ms });
      cli.out.result(result, (r) => `slept ${r.sleptMs} ms`);
    });
  return debug;
}

function parseMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected milliseconds as a non-negative integer, got "${value}"`);
  return n;
}
