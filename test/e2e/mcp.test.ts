import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

import type { VmInfo } from '../../src/rpc/methods.js';
import { TestRepo } from '../helpers/git-repo.js';
import { BANGER_BIN, BangerWorld, vmWorldOptions, userModeLabel } from '../integration/harness.js';

/**
 * `banger mcp` driven by a real MCP client (the SDK's Client over
 * StdioClientTransport, which spawns the server as an agent client does):
 * the tools an agent sees, and a sandbox's whole life through them against
 * a real daemon and a real VM; the patch it returns applies on the host.
 */
describe(`banger mcp with a real MCP client${userModeLabel()}`, { timeout: 1_800_000 }, () => {
  let world: BangerWorld;
  let client: Client;
  let transport: StdioClientTransport;
  let repo: TestRepo;
  let stderr = '';

  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
    repo = new TestRepo();
    repo.git('config', 'user.name', 'MCP Tester');
    repo.git('config', 'user.email', 'mcp@banger.invalid');
    repo.write('README.md', 'hello\n').write('src/app.txt', 'version 1\n').commit('initial');
    const [command, ...args] = [...world.commandPrefix(), BANGER_BIN, 'mcp'];
    transport = new StdioClientTransport({ command, args, env: world.env as Record<string, string>, stderr: 'pipe' });
    transport.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    client = new Client({ name: 'banger-e2e', version: '1.0.0' });
    await client.connect(transport);
  });
  after(async () => {
    await client.close().catch(() => undefined);
    await world.run(['vm', 'delete', '--all', '--force']).catch(() => undefined);
    world.close();
    repo.remove();
  });

  const call = async (name: string, args: Record<string, unknown>, options: { progress?: string[] } = {}): Promise<CallToolResult> => {
    const progress = options.progress;
    const result = (await client.callTool(
      { name, arguments: args },
      undefined,
      progress === undefined ? { timeout: 900_000 } : { timeout: 900_000, resetTimeoutOnProgress: true, onprogress: (p) => progress.push(p.message ?? '') },
    )) as CallToolResult;
    return result;
  };
  const text = (result: CallToolResult): string => result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');

  test('lists its tools, each described for an agent, with destructive ones marked', async () => {
    const { tools } = await client.listTools();
    const byName = new Map(tools.map((t) => [t.name, t]));
    for (const name of [
      'sandbox_create',
      'sandbox_run',
      'sandbox_exec',
      'sandbox_read_file',
      'sandbox_write_file',
      'sandbox_export_patch',
      'sandbox_list',
      'sandbox_stop',
      'sandbox_start',
      'sandbox_delete',
    ]) {
      const tool = byName.get(name);
      assert.ok(tool !== undefined, `tool ${name}`);
      assert.ok((tool.description ?? '').length > 40, `${name} explains itself`);
      assert.equal(tool.inputSchema.type, 'object');
    }
    assert.equal(byName.get('sandbox_delete')?.annotations?.destructiveHint, true);
    assert.equal(byName.get('sandbox_exec')?.annotations?.destructiveHint, true);
    assert.equal(byName.get('sandbox_list')?.annotations?.readOnlyHint, true);
    assert.equal(byName.get('sandbox_export_patch')?.annotations?.readOnlyHint, true);
    assert.deepEqual(byName.get('sandbox_exec')?.inputSchema.required?.sort(), ['command', 'sandbox']);
  });

  test('a bad call is an error result with banger’s code and hint, not a crash', async () => {
    const missing = await call('sandbox_exec', { sandbox: 'no-such-box', command: 'true' });
    assert.equal(missing.isError, true);
    assert.match(text(missing), /^error\[ERR_NOT_FOUND\]: /);
    const relative = await call('sandbox_create', { repo_path: 'relative/path' });
    assert.equal(relative.isError, true);
    assert.match(text(relative), /ERR_INVALID_ARGUMENT.*must be absolute/);
    assert.deepEqual(await world.json<{ vms: VmInfo[] }>(['vm', 'list']), { vms: [] }, 'a refused create leaves no VM');
  });

  test('create from a repo, exec an edit, read and write files, export the patch, delete: the patch applies on the host', async () => {
    const progress: string[] = [];
    const created = await call('sandbox_create', { repo_path: repo.root, name: 'agentbox' }, { progress });
    assert.notEqual(created.isError, true, text(created) + stderr);
    assert.match(text(created), /created sandbox agentbox \(running, .*the repo is at \/root\/repo/);
    assert.ok(progress.length > 0, 'the create reported progress');

    const edited = await call('sandbox_exec', {
      sandbox: 'agentbox',
      command: 'sed -i s/1/2/ src/app.txt && echo new > NOTES.md && cat src/app.txt && echo oops >&2; exit 3',
    });
    assert.notEqual(edited.isError, true, text(edited));
    const outcome = edited.structuredContent as { exit_code: number; stdout: string; stderr: string; timed_out: boolean };
    assert.deepEqual(outcome, { exit_code: 3, signal: null, timed_out: false, stdout: 'version 2\n', stderr: 'oops\n' });
    assert.match(text(edited), /^exit status 3/);

    const written = await call('sandbox_write_file', { sandbox: 'agentbox', path: 'docs/guide.md', content: '# Guide\nline two\n' });
    assert.notEqual(written.isError, true, text(written));
    const read = await call('sandbox_read_file', { sandbox: 'agentbox', path: '/root/repo/docs/guide.md' });
    assert.equal((read.structuredContent as { content: string }).content, '# Guide\nline two\n');
    const notThere = await call('sandbox_read_file', { sandbox: 'agentbox', path: 'nope.txt' });
    assert.equal(notThere.isError, true);
    assert.match(text(notThere), /not a regular file: nope\.txt/);

    const timedOut = await call('sandbox_exec', { sandbox: 'agentbox', command: 'echo started; sleep 60', timeout_seconds: 2 });
    assert.equal((timedOut.structuredContent as { timed_out: boolean }).timed_out, true);
    assert.match((timedOut.structuredContent as { stdout: string }).stdout, /started/);

    const listed = await call('sandbox_list', {});
    assert.match(text(listed), /agentbox\trunning/);

    const exported = await call('sandbox_export_patch', { sandbox: 'agentbox' });
    assert.notEqual(exported.isError, true, text(exported));
    const patch = (exported.structuredContent as { patch: string; changed_files: { path: string }[] }).patch;
    assert.deepEqual((exported.structuredContent as { changed_files: { path: string }[] }).changed_files.map((f) => f.path).sort(), [
      'NOTES.md',
      'docs/guide.md',
      'src/app.txt',
    ]);
    execFileSync('git', ['apply', '--index'], { cwd: repo.root, input: patch });
    assert.equal(readFileSync(join(repo.root, 'src/app.txt'), 'utf8'), 'version 2\n');
    assert.equal(readFileSync(join(repo.root, 'docs/guide.md'), 'utf8'), '# Guide\nline two\n');

    const deleted = await call('sandbox_delete', { sandbox: 'agentbox' });
    assert.notEqual(deleted.isError, true, text(deleted));
    assert.deepEqual(await world.json<{ vms: VmInfo[] }>(['vm', 'list']), { vms: [] });
  });

  test('sandbox_run: one call creates, runs, returns the patch and deletes', async () => {
    const result = await call('sandbox_run', { repo_path: repo.root, command: 'echo more >> README.md && cat README.md' });
    assert.notEqual(result.isError, true, text(result));
    const structured = result.structuredContent as { exit_code: number; stdout: string; patch: string };
    assert.equal(structured.exit_code, 0);
    assert.match(structured.stdout, /more/);
    assert.match(structured.patch, /^\+more$/m);
    assert.deepEqual(await world.json<{ vms: VmInfo[] }>(['vm', 'list']), { vms: [] }, 'the sandbox is gone');
  });
});
