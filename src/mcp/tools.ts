import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

import type { BangerClient } from '../sdk/index.js';
import { BangerError } from '../rpc/errors.js';
import type { ProgressEvent, VmInfo } from '../rpc/methods.js';
import { MEMORY_MIB_MAX, MEMORY_MIB_MIN, VCPU_MAX, VCPU_MIN } from '../rpc/schemas.js';
import { runInSandbox, type CommandOutcome } from './sandbox-exec.js';
import { failed, ok } from './tool-output.js';
import type { ToolContext } from './tool-context.js';

/**
 * The tools `banger mcp` offers an agent: a sandbox's whole life (create or
 * one-shot run, exec, files, the patch of its edits, list, stop, start,
 * delete). Each is a thin use of the SDK, so MCP, the SDK and the CLI do the
 * same thing for the same call. Descriptions are written for the agent that
 * reads them: what the tool does, what it returns, what it costs and what it
 * destroys. `destructiveHint` marks the tools that end processes or lose data.
 */

const SANDBOX = z.string().min(1).max(256).describe('The sandbox: its name (as sandbox_create or sandbox_list returned it) or id');
const TIMEOUT = z
  .number()
  .int()
  .min(1)
  .max(3600)
  .optional()
  .describe('Kill the command after this many seconds (default 120, at most 3600); the output so far is still returned');
const REPO_PATH = z
  .string()
  .min(1)
  .describe(
    'Absolute path of a git repository (any directory in it) on the host. Its tracked files, with uncommitted edits, are copied to /root/repo in the sandbox; untracked and ignored files are not (set include_untracked to add untracked ones). The host repo is never changed.',
  );
const IMAGE = z
  .string()
  .min(1)
  .optional()
  .describe(
    'Image to boot: a banger image name (debian-bookworm is the default; debian-bookworm-dev adds build tools, docker and mise) or an OCI reference such as docker.io/library/node:22',
  );
const CREATE_SHAPE = {
  repo_path: REPO_PATH.optional(),
  image: IMAGE,
  name: z.string().min(1).max(63).optional().describe('Name for the sandbox (a DNS label: lowercase letters, digits, dashes); default: a generated one'),
  vcpu: z.number().int().min(VCPU_MIN).max(VCPU_MAX).optional().describe('Virtual CPUs (default: sized to the host)'),
  memory_mib: z.number().int().min(MEMORY_MIB_MIN).max(MEMORY_MIB_MAX).optional().describe('Memory in MiB (default: sized to the host)'),
  nat: z.boolean().optional().describe('Let the sandbox reach the internet (default false: it reaches only the host)'),
  include_untracked: z.boolean().optional().describe("Also copy the repo's untracked files that are not ignored (default false)"),
};

export function registerTools(server: McpServer, context: ToolContext): void {
  /**
   * Every tool runs behind this: the daemon connection made (or remade), the
   * call's cancellation and progress handed on, and any failure turned into
   * an `isError` result with banger's code and hint instead of a protocol error.
   */
  const guarded =
    <A>(run: (args: A, client: BangerClient, call: ToolCall) => Promise<CallToolResult>) =>
    async (args: A, extra: ToolExtra): Promise<CallToolResult> => {
      try {
        const client = await context.client();
        return await run(args, client, { signal: extra.signal, progress: context.progress(extra) });
      } catch (error) {
        return failed(error);
      }
    };
  const tool = server.registerTool.bind(server);

  tool(
    'sandbox_create',
    {
      title: 'Create a sandbox',
      description:
        "Create a sandbox: a throwaway Linux microVM (its own kernel, root filesystem and /root disk; Debian by default) and boot it. With repo_path, the repository is copied in at /root/repo and commands run there. Returns the sandbox name to pass to the other tools. Takes a few seconds to a minute (the first use of an image downloads it); reports progress. Nothing on the host changes except banger's own state.",
      inputSchema: CREATE_SHAPE,
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const vm = await createSandbox(client, args, call);
      return ok(describeCreated(vm), { sandbox: summarize(vm) });
    }),
  );

  tool(
    'sandbox_run',
    {
      title: 'Run a command in a fresh sandbox',
      description:
        "One shot: create a sandbox (with repo_path copied to /root/repo), run one shell command there, return its exit status, output and a patch of every file it changed in the repo, then delete the sandbox (unless keep is true). Use it to run a repo's tests or try a change in isolation.",
      inputSchema: {
        ...CREATE_SHAPE,
        command: z.string().min(1).describe('Shell command, run with sh -c in /root/repo (or /root without a repo) as root'),
        timeout_seconds: TIMEOUT,
        keep: z.boolean().optional().describe('Keep the sandbox afterwards (default false: it is deleted)'),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const vm = await createSandbox(client, args, call);
      try {
        const outcome = await runInSandbox(client, vm.id, ['sh', '-c', args.command], { timeoutSeconds: args.timeout_seconds, signal: call.signal });
        const patch = vm.workspace === null ? undefined : await client.workspace.export(vm.id, { signal: call.signal });
        const structured = {
          sandbox: summarize(vm),
          ...outcomeFields(outcome),
          ...(patch === undefined ? {} : { patch: patch.patchText, changed_files: patch.files }),
        };
        const kept = args.keep === true ? `; sandbox ${vm.name} kept` : '';
        return ok(`${describeOutcome(outcome)}${kept}`, structured, {
          stdout: outcome.stdout,
          stderr: outcome.stderr,
          ...(patch === undefined ? {} : { patch: patch.patchText }),
        });
      } finally {
        if (args.keep !== true) await client.vm.delete(vm.id).catch(() => undefined);
      }
    }),
  );

  tool(
    'sandbox_exec',
    {
      title: 'Run a command in a sandbox',
      description:
        'Run a shell command in a running sandbox with sh -c, as root, in /root/repo when the sandbox has a repo (else /root). Returns the exit status, stdout and stderr (long output is cut in the middle). A non-zero exit status is a normal result, not an error. The command can change anything inside the sandbox, never the host.',
      inputSchema: {
        sandbox: SANDBOX,
        command: z.string().min(1).describe('Shell command, e.g. "npm test" or "grep -rn TODO src | head"'),
        timeout_seconds: TIMEOUT,
        stdin: z.string().optional().describe("Text for the command's standard input (default: none, it reads end-of-file)"),
      },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const outcome = await runInSandbox(client, args.sandbox, ['sh', '-c', args.command], {
        timeoutSeconds: args.timeout_seconds,
        stdin: args.stdin,
        signal: call.signal,
      });
      return ok(describeOutcome(outcome), outcomeFields(outcome), { stdout: outcome.stdout, stderr: outcome.stderr });
    }),
  );

  tool(
    'sandbox_read_file',
    {
      title: 'Read a file in a sandbox',
      description:
        'Read a text file in a sandbox. A relative path is relative to /root/repo when the sandbox has a repo (else /root). Returns the content (at most 1 MiB; binary files come back base64-encoded).',
      inputSchema: { sandbox: SANDBOX, path: z.string().min(1).describe('File path in the sandbox, e.g. src/index.ts or /etc/os-release') },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const outcome = await runInSandbox(
        client,
        args.sandbox,
        ['sh', '-c', `[ -f "$1" ] || { echo "not a regular file: $1" >&2; exit 2; }; head -c ${READ_LIMIT + 1} < "$1"`, 'sh', args.path],
        { signal: call.signal, binary: true },
      );
      if (outcome.exitCode !== 0) throw guestFailure(`cannot read ${args.path}`, outcome);
      const bytes = outcome.stdoutBytes;
      const truncated = bytes.length > READ_LIMIT;
      const content = bytes.subarray(0, READ_LIMIT);
      const binary = content.includes(0);
      const text = binary ? content.toString('base64') : content.toString('utf8');
      const note = `${args.path}: ${content.length} bytes${truncated ? ' (cut at 1 MiB)' : ''}${binary ? ', binary: base64-encoded' : ''}`;
      return {
        content: [{ type: 'text', text: `${note}\n${text}` }],
        structuredContent: { path: args.path, encoding: binary ? 'base64' : 'utf8', truncated, content: text },
      };
    }),
  );

  tool(
    'sandbox_write_file',
    {
      title: 'Write a file in a sandbox',
      description:
        'Write (create or replace) a file in a sandbox with the given text, creating its directories. A relative path is relative to /root/repo when the sandbox has a repo (else /root). Replaces the whole file; export the patch later to get the change back.',
      inputSchema: {
        sandbox: SANDBOX,
        path: z.string().min(1).describe('File path in the sandbox'),
        content: z.string().describe('The complete new content of the file'),
      },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const outcome = await runInSandbox(client, args.sandbox, ['sh', '-c', 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"', 'sh', args.path], {
        stdin: args.content,
        signal: call.signal,
      });
      if (outcome.exitCode !== 0) throw guestFailure(`cannot write ${args.path}`, outcome);
      return ok(`wrote ${Buffer.byteLength(args.content)} bytes to ${args.path}`, { path: args.path, bytes: Buffer.byteLength(args.content) });
    }),
  );

  tool(
    'sandbox_export_patch',
    {
      title: "Get a sandbox's edits as a patch",
      description:
        "Return a git patch of everything changed in the sandbox's repo (/root/repo) since it was copied in: edits, new files, deletions, binary files. Apply it on the host with `git apply`. Never changes the sandbox. Only for a sandbox created with repo_path.",
      inputSchema: {
        sandbox: SANDBOX,
        base_commit: z.string().min(1).optional().describe('Diff against this commit instead of the one the repo was copied from'),
      },
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const exported = await client.workspace.export(args.sandbox, {
        signal: call.signal,
        ...(args.base_commit === undefined ? {} : { baseCommit: args.base_commit }),
      });
      const summary =
        exported.files.length === 0
          ? `no changes since ${exported.baseCommit.slice(0, 12)}`
          : `${exported.files.length} changed file${exported.files.length === 1 ? '' : 's'} since ${exported.baseCommit.slice(0, 12)}: ${exported.files.map((f) => `${f.status} ${f.path}`).join(', ')}`;
      return ok(summary, { base_commit: exported.baseCommit, changed_files: exported.files, patch: exported.patchText }, { patch: exported.patchText });
    }),
  );

  tool(
    'sandbox_list',
    {
      title: 'List sandboxes',
      description: 'List the sandboxes (banger VMs) on this machine: name, state, address, image, CPUs and memory, and the repo each holds.',
      inputSchema: {},
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guarded(async (_args, client, call) => {
      const vms = await client.vm.list({ signal: call.signal });
      const lines = vms.map(
        (vm) =>
          `${vm.name}\t${vm.state}\t${vm.ip}\t${vm.image}\t${vm.spec.vcpu} vcpu, ${vm.spec.memoryMiB} MiB${vm.workspace === null ? '' : `\trepo ${vm.workspace.sourcePath} at ${vm.workspace.guestPath}`}`,
      );
      return ok(vms.length === 0 ? 'no sandboxes' : `${vms.length} sandbox${vms.length === 1 ? '' : 'es'}:\n${lines.join('\n')}`, {
        sandboxes: vms.map(summarize),
      });
    }),
  );

  tool(
    'sandbox_stop',
    {
      title: 'Stop a sandbox',
      description: 'Shut a sandbox down. Its files stay (sandbox_start boots it again); its running processes end.',
      inputSchema: { sandbox: SANDBOX },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const vm = await client.vm.stop(args.sandbox, { signal: call.signal, onProgress: call.progress });
      return ok(`sandbox ${vm.name} is ${vm.state}`, { sandbox: summarize(vm) });
    }),
  );

  tool(
    'sandbox_start',
    {
      title: 'Start a stopped sandbox',
      description: 'Boot a stopped sandbox again, with its files as they were.',
      inputSchema: { sandbox: SANDBOX },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const vm = await client.vm.start(args.sandbox, { signal: call.signal, onProgress: call.progress });
      return ok(`sandbox ${vm.name} is ${vm.state} (${vm.ip})`, { sandbox: summarize(vm) });
    }),
  );

  tool(
    'sandbox_delete',
    {
      title: 'Delete a sandbox',
      description:
        'Delete a sandbox and everything in it: its files, its processes and its disks. This cannot be undone: export the patch first if you need its edits.',
      inputSchema: { sandbox: SANDBOX },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    guarded(async (args, client, call) => {
      const vm = await client.vm.delete(args.sandbox, { signal: call.signal, onProgress: call.progress });
      return ok(`deleted sandbox ${vm.name}`, { sandbox: { name: vm.name, id: vm.id } });
    }),
  );
}

/** What a tool's run gets besides its arguments: the call's cancellation and its progress sink. */
interface ToolCall {
  signal: AbortSignal;
  progress: ((event: ProgressEvent) => void) | undefined;
}

type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

const READ_LIMIT = 1024 * 1024;

interface CreateArgs {
  repo_path?: string | undefined;
  image?: string | undefined;
  name?: string | undefined;
  vcpu?: number | undefined;
  memory_mib?: number | undefined;
  nat?: boolean | undefined;
  include_untracked?: boolean | undefined;
}

/** Creates and boots a VM, then copies the repo in; a VM whose repo copy fails is deleted again (nothing half-made is left). */
async function createSandbox(client: BangerClient, args: CreateArgs, call: ToolCall): Promise<VmInfo> {
  if (args.repo_path !== undefined && !args.repo_path.startsWith('/'))
    throw new BangerError('ERR_INVALID_ARGUMENT', `repo_path must be absolute, got "${args.repo_path}"`, {
      hint: 'give the full path of the repository on the host',
    });
  const vm = await client.vm.create({
    ...(args.name === undefined ? {} : { name: args.name }),
    ...(args.image === undefined ? {} : { image: args.image }),
    ...(args.vcpu === undefined ? {} : { vcpu: args.vcpu }),
    ...(args.memory_mib === undefined ? {} : { memoryMiB: args.memory_mib }),
    ...(args.nat === undefined ? {} : { nat: args.nat }),
    signal: call.signal,
    onProgress: call.progress,
  });
  if (args.repo_path === undefined) return vm;
  try {
    await client.workspace.prepare(vm.id, {
      sourcePath: args.repo_path,
      ...(args.include_untracked === true ? { includeUntracked: true } : {}),
      signal: call.signal,
      onProgress: call.progress,
    });
  } catch (error) {
    await client.vm.delete(vm.id).catch(() => undefined);
    throw error;
  }
  return client.vm.show(vm.id);
}

function summarize(vm: VmInfo): Record<string, unknown> {
  return {
    name: vm.name,
    id: vm.id,
    state: vm.state,
    ip: vm.ip,
    image: vm.image,
    vcpu: vm.spec.vcpu,
    memory_mib: vm.spec.memoryMiB,
    repo: vm.workspace === null ? null : { host_path: vm.workspace.sourcePath, guest_path: vm.workspace.guestPath, base_commit: vm.workspace.baseCommit },
  };
}

function describeCreated(vm: VmInfo): string {
  const where = vm.workspace === null ? 'commands run in /root' : `the repo is at ${vm.workspace.guestPath}, where commands run`;
  return `created sandbox ${vm.name} (${vm.state}, ${vm.ip}, ${vm.image}, ${vm.spec.vcpu} vcpu, ${vm.spec.memoryMiB} MiB); ${where}`;
}

function describeOutcome(outcome: CommandOutcome): string {
  if (outcome.timedOut) return `timed out after ${outcome.timeoutSeconds} s and was killed`;
  if (outcome.signal !== null) return `ended by signal ${outcome.signal} (exit status ${outcome.exitCode})`;
  return `exit status ${outcome.exitCode}`;
}

function outcomeFields(outcome: CommandOutcome): Record<string, unknown> {
  return { exit_code: outcome.exitCode, signal: outcome.signal, timed_out: outcome.timedOut, stdout: outcome.stdout, stderr: outcome.stderr };
}

/** A guest helper command (read, write) that failed: its stderr is the reason. */
function guestFailure(what: string, outcome: CommandOutcome): BangerError {
  const reason = outcome.stderr.trim().split('\n').at(-1) ?? '';
  return new BangerError('ERR_INVALID_ARGUMENT', `${what}: ${reason === '' ? `exit status ${outcome.exitCode}` : reason}`, {
    hint: 'check the path with sandbox_exec (e.g. ls -la); relative paths start at /root/repo (or /root)',
  });
}
