import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Command } from 'commander';

import { readJsonDocs, shapeKeys } from '../../test/helpers/json-docs.js';
import { complete } from './completion.js';
import { buildProgram } from './program.js';

/**
 * The CLI's consistency, walked over the whole command tree: every command
 * explains itself in --help, offers --json, is offered by completion, and has
 * its --json output documented in docs/json.md (and every section there
 * names a real command).
 */

interface Walked {
  path: string[];
  command: Command;
  leaf: boolean;
}

function visible(command: Command): Command[] {
  return command
    .createHelp()
    .visibleCommands(command)
    .filter((c) => c.name() !== 'help');
}

function walk(command: Command, path: string[] = []): Walked[] {
  return visible(command).flatMap((sub) => {
    const subPath = [...path, sub.name()];
    const children = visible(sub);
    return [{ path: subPath, command: sub, leaf: children.length === 0 }, ...walk(sub, subPath)];
  });
}

const program = buildProgram() as unknown as Command;
const commands = walk(program);

test('the tree is walked (a sanity floor: the CLI has dozens of commands)', () => {
  assert.ok(commands.length > 40, `only ${commands.length} commands found`);
  assert.ok(commands.some((c) => c.path.join(' ') === 'vm workspace export'));
});

test('every command has help text: a description, and --help that shows usage', () => {
  for (const { path, command } of commands) {
    assert.ok(command.description().length >= 10, `banger ${path.join(' ')} has no real description`);
    const help = command.helpInformation();
    assert.match(help, /^Usage: /, `banger ${path.join(' ')} --help`);
  }
});

test('every command is offered by completion under its parent, and offers --json', async () => {
  for (const { path } of commands) {
    const parent = path.slice(0, -1);
    const name = path.at(-1) ?? '';
    const offered = await complete(program, [...parent, '']);
    assert.ok(
      offered.some((c) => c.value === name && c.description !== ''),
      `completion of "banger ${parent.join(' ')} " lacks ${name}`,
    );
    const options = await complete(program, [...path, '--']);
    assert.ok(
      options.some((c) => c.value === '--json'),
      `completion of "banger ${path.join(' ')} --" lacks --json`,
    );
  }
});

test('docs/json.md documents the --json output of every command, and only of real ones', () => {
  const documented = new Map(readJsonDocs().map((s) => [s.command, s]));
  const leaves = commands.filter((c) => c.leaf).map((c) => c.path.join(' '));
  const missing = leaves.filter((path) => !documented.has(path));
  assert.deepEqual(missing, [], `commands without a section in docs/json.md: ${missing.join(', ')}`);
  const all = new Set(commands.map((c) => c.path.join(' ')));
  const stray = [...documented.keys()].filter((path) => !all.has(path));
  assert.deepEqual(stray, [], `docs/json.md sections naming no command: ${stray.join(', ')}`);
  for (const section of documented.values()) if (section.shape !== undefined) shapeKeys(section.shape);
});

test('aliases a docker user types resolve: vm ls, vm ps, vm rm, and top-level ps', async () => {
  const vm = commands.find((c) => c.path.join(' ') === 'vm')?.command;
  assert.ok(vm !== undefined);
  const list = visible(vm).find((c) => c.name() === 'list');
  assert.deepEqual(list?.aliases(), ['ls', 'ps']);
  assert.deepEqual(
    visible(vm)
      .find((c) => c.name() === 'delete')
      ?.aliases(),
    ['rm'],
  );
  assert.ok(commands.some((c) => c.path.join(' ') === 'ps'));
  // Completion walks through an alias to the command's own options.
  assert.ok((await complete(program, ['vm', 'rm', '--'])).some((c) => c.value === '--all'));
});

test('help lists the exit statuses: 130 everywhere, the guest status for exec and run, 3 for daemon status', () => {
  const helpOf = (path: string): string => {
    const found = path === '' ? program : commands.find((c) => c.path.join(' ') === path)?.command;
    assert.ok(found !== undefined, path);
    let text = '';
    found.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
    found.outputHelp();
    return text;
  };
  assert.match(helpOf(''), /130 interrupted/);
  for (const path of ['vm exec', 'vm run']) assert.match(helpOf(path), /the guest command's own status/);
  assert.match(helpOf('daemon status'), /3 when it is not/);
});
