import { WORKSPACE_MODES } from '../rpc/methods.js';
import type { ExecService } from '../services/exec/exec-service.js';
import type { WorkspaceService } from '../services/workspace/workspace-service.js';
import { optionalBoolean, optionalChoice, optionalInteger, optionalString, requireAbsolutePath, requireString, requireStringArray } from './params.js';
import type { DaemonHandlers } from './rpc-server.js';
import type { SocketClientStream, StreamHub } from './stream-hub.js';

export type WorkspaceHandlers = Pick<DaemonHandlers, 'vmExec' | 'workspacePrepare' | 'workspaceExport'>;

/** Claims the request's stream, runs `fn` with it, and ends the stream (flushed) whatever happens. */
async function withStream<T>(streams: StreamHub, params: unknown, signal: AbortSignal, fn: (stream: SocketClientStream) => Promise<T>): Promise<T> {
  const stream = await streams.claim(requireString(params, 'streamToken'), signal);
  try {
    return await fn(stream);
  } finally {
    await stream.end();
  }
}

function optionalTty(params: unknown): { cols: number; rows: number; term: string } | undefined {
  const tty = (params as { tty?: unknown }).tty;
  if (tty === undefined) return undefined;
  const cols = optionalInteger(tty, 'cols') ?? 80;
  const rows = optionalInteger(tty, 'rows') ?? 24;
  const term = optionalString(tty, 'term') ?? 'xterm';
  return { cols: Math.min(Math.max(cols, 1), 1000), rows: Math.min(Math.max(rows, 1), 1000), term: /^[A-Za-z0-9._+-]{1,64}$/.test(term) ? term : 'xterm' };
}

export function createWorkspaceHandlers(deps: { workspaces: WorkspaceService; exec: ExecService; streams: StreamHub }): WorkspaceHandlers {
  const { workspaces, exec, streams } = deps;
  return {
    vmExec: (params, ctx) =>
      withStream(streams, params, ctx.signal, (stream) =>
        exec.exec(
          {
            ref: requireString(params, 'ref'),
            command: requireStringArray(params, 'command'),
            tty: optionalTty(params),
            autoPrepare: optionalBoolean(params, 'autoPrepare'),
          },
          stream,
          ctx,
        ),
      ),

    workspacePrepare: async (params, ctx) => {
      const result = await workspaces.prepare(
        {
          ref: requireString(params, 'ref'),
          sourcePath: requireAbsolutePath(params, 'sourcePath'),
          guestPath: optionalString(params, 'guestPath'),
          mode: optionalChoice(params, 'mode', WORKSPACE_MODES),
          includeUntracked: optionalBoolean(params, 'includeUntracked'),
          branch: optionalString(params, 'branch'),
          from: optionalString(params, 'from'),
          force: optionalBoolean(params, 'force'),
        },
        ctx,
      );
      return { vm: result.vm.name, workspace: result.workspace, files: result.files, bytes: result.bytes, untrackedSkipped: result.untrackedSkipped };
    },

    workspaceExport: (params, ctx) =>
      withStream(streams, params, ctx.signal, async (stream) => {
        const result = await workspaces.export(
          { ref: requireString(params, 'ref'), baseCommit: optionalString(params, 'baseCommit'), stat: optionalBoolean(params, 'stat') === true },
          stream.stdout,
          ctx,
        );
        return { vm: result.vm.name, baseCommit: result.baseCommit, files: result.files, bytes: result.bytes };
      }),
  };
}
