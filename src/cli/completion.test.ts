import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Command } from 'commander';

import { complete } from './completion.js';
import { buildProgram } from './program.js';

const program = buildProgram() as unknown as Command;
const values = (words: string[]): string[] => complete(program, words).map((c) => c.value);

test('top-level words complete to visible commands', () => {
  assert.deepEqual(values(['da']), ['daemon']);
  const all = values(['']);
  for (const name of ['daemon', 'doctor', 'version', 'completion']) assert.ok(all.includes(name), name);
  assert.ok(!all.includes('__complete'), 'hidden commands stay hidden');
  assert.ok(!all.includes('debug'), 'hidden commands stay hidden');
});

test('subcommands complete under their parent, with descriptions', () => {
  assert.deepEqual(values(['daemon', '']).sort(), ['logs', 'start', 'status', 'stop']);
  assert.deepEqual(values(['daemon', 'st']).sort(), ['start', 'status', 'stop']);
  const [start] = complete(program, ['daemon', 'star']);
  assert.match(start?.description ?? '', /Start bangerd/);
});

test('options complete for the current command, including global ones', () => {
  const options = values(['daemon', 'logs', '--']);
  for (const flag of ['--lines', '--follow', '--op', '--json', '--verbose']) assert.ok(options.includes(flag), flag);
});

test('option values are skipped when walking the command path', () => {
  assert.deepEqual(values(['--json', 'daemon', 'logs', '-n', '5', '--f']), ['--follow']);
});

test('nothing is offered after --', () => {
  assert.deepEqual(values(['daemon', '--', '']), []);
});
