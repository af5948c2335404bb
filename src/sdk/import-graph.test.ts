import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

/**
 * The SDK is imported by other programs: its import graph must stay small.
 * It may load Node's built-ins and banger's own low layers, never a package
 * (commander, ink, vscode-jsonrpc, ssh2…) or the CLI's commands and renderers.
 */
const here = dirname(fileURLToPath(import.meta.url));
const srcRoot = resolve(here, '..');

/** Every module the SDK's entry loads at run time (type-only imports are gone from tsc's output). */
function importGraph(entry: string): { modules: string[]; bare: string[] } {
  const modules = new Set<string>();
  const bare = new Set<string>();
  const visit = (file: string): void => {
    if (modules.has(file)) return;
    modules.add(file);
    const code = readFileSync(file, 'utf8');
    for (const match of code.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|(?:^|\n)\s*import\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
      const specifier = match[1] ?? match[2] ?? match[3] ?? '';
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
      else bare.add(specifier);
    }
  };
  visit(entry);
  return { modules: [...modules].map((m) => relative(srcRoot, m)).sort(), bare: [...bare].sort() };
}

describe('the SDK import graph', () => {
  const graph = importGraph(join(here, 'index.js'));

  test('loads only Node built-ins, no package', () => {
    assert.deepEqual(
      graph.bare.filter((s) => !s.startsWith('node:')),
      [],
    );
    assert.ok(graph.bare.includes('node:net'), `the scan found the imports: ${graph.bare.join(' ')}`);
  });

  test('takes from the CLI only the daemon connection and the stream client, nothing from the daemon or services', () => {
    assert.deepEqual(
      graph.modules.filter((m) => m.startsWith('cli/')),
      ['cli/daemon-connection.js', 'cli/stream-client.js'],
    );
    assert.deepEqual(
      graph.modules.filter((m) => /^(daemon|services|store|vmm|doctor)\//.test(m)),
      [],
    );
    assert.ok(graph.modules.includes('rpc/client.js'));
  });
});
