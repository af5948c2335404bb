import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Command } from '@commander-js/extra-typings';

import { tuiCommand } from '../cli/commands/tui.js';
import { BangerError } from '../rpc/errors.js';

test('banger tui without a terminal is a usage error that points at vm list and vm stats --watch', async () => {
  // The test runner's stdout is a pipe, so this is the case of `banger tui | cat` or a script.
  assert.notEqual(process.stdout.isTTY, true);
  const program = new Command('banger').exitOverride().addCommand(tuiCommand());
  await assert.rejects(
    program.parseAsync(['tui'], { from: 'user' }),
    (error: unknown) =>
      error instanceof BangerError &&
      error.code === 'ERR_USAGE' &&
      error.message === 'banger tui needs a terminal' &&
      error.hint === 'use `banger vm list` or `banger vm stats --watch`',
  );
});
