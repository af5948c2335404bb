import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Command } from 'commander';

import { complete, type ObjectLister } from './completion.js';
import { buildProgram } from './program.js';

const program = buildProgram() as unknown as Command;
const values = async (words: string[], lister?: ObjectLister): Promise<string[]> => (await complete(program, words, lister)).map((c) => c.value);

test('top-level words complete to visible commands', async () => {
  assert.deepEqual(await values(['da']), ['daemon']);
  const all = await values(['']);
  for (const name of ['daemon', 'doctor', 'version', 'completion', 'vm', 'image', 'kernel']) assert.ok(all.includes(name), name);
  assert.ok(!all.includes('__complete'), 'hidden commands stay hidden');
  assert.ok(!all.includes('debug'), 'hidden commands stay hidden');
});

test('subcommands complete under their parent, with descriptions', async () => {
  assert.deepEqual((await values(['daemon', ''])).sort(), ['logs', 'start', 'status', 'stop']);
  assert.deepEqual((await values(['daemon', 'st'])).sort(), ['start', 'status', 'stop']);
  const [start] = await complete(program, ['daemon', 'star']);
  assert.match(start?.description ?? '', /Start bangerd/);
});

test('options complete for the current command, including global ones', async () => {
  const options = await values(['daemon', 'logs', '--']);
  for (const flag of ['--lines', '--follow', '--op', '--json', '--verbose']) assert.ok(options.includes(flag), flag);
});

test('option values are skipped when walking the command path', async () => {
  assert.deepEqual(await values(['--json', 'daemon', 'logs', '-n', '5', '--f']), ['--follow']);
});

test('nothing is offered after --', async () => {
  assert.deepEqual(await values(['daemon', '--', '']), []);
});

test('arguments naming a VM, image or kernel complete from the daemon, by kind and position', async () => {
  const asked: string[] = [];
  const lister: ObjectLister = (kind) => {
    asked.push(kind);
    return Promise.resolve(
      kind === 'vm'
        ? [
            { value: 'box', description: 'running' },
            { value: 'bench', description: 'stopped' },
          ]
        : [{ value: 'debian-bookworm', description: 'catalog' }],
    );
  };
  assert.deepEqual(await values(['vm', 'exec', 'b'], lister), ['box', 'bench']);
  assert.deepEqual(await values(['vm', 'stop', 'bo'], lister), ['box']);
  assert.deepEqual(await values(['image', 'show', ''], lister), ['debian-bookworm']);
  // After the VM argument of `vm exec` comes the command: no names there.
  assert.deepEqual(await values(['vm', 'exec', 'box', 'un'], lister), []);
  assert.deepEqual(asked, ['vm', 'vm', 'image']);
});
