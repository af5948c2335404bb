import { TERM_NAME } from '../rpc/schemas.js';
import type { ExecService } from '../services/exec/exec-service.js';
import type { WorkspaceService } from '../services/workspace/workspace-service.js';
import type { DaemonHandlers } from './rpc-server.js';
import type { SocketClientStream, StreamHub } from './stream-hub.js';

export type WorkspaceHandlers = Pick<DaemonHandlers, 'vmExec' | 'workspacePrepare' | 'workspaceExport'>;

/** Claims the request's stream, runs `fn` with it, and ends the stream (flushed) whatever happens. */
async function withStream<T>(streams: StreamHub, token: string, signal: AbortSignal, fn: (stream: SocketClientStream) => Promise<T>): Promise<T> {
  const stream = await streams.claim(token, signal);
  try {
    return await fn(stream);
  } finally {
    await stream.end();
  }
}

/** The terminal asked for, clamped to sizes a pty takes, xterm for an odd $TERM (the schema checked the types). */
function clampTty(tty: { cols: number; rows: number; term: string } | undefined): { cols: number; rows: number; term: string } | undefined {
  if (tty === undefined) return undefined;
  const clamp = (n: number): number => Math.min(Math.max(n, 1), 1000);
  return { cols: clamp(tty.cols), rows: clamp(tty.rows), term: TERM_NAME.test(tty.term) ? tty.term : 'xterm' };
}

/** Guest I/O methods; params arrive checked against their schemas (see withCheckedParams). */
export function createWorkspaceHandlers(deps: { workspaces: WorkspaceService; exec: ExecService; streams: StreamHub }): WorkspaceHandlers {
  const { workspaces, exec, streams } = deps;
  return {
    vmExec: (params, ctx) =>
      withStream(streams, params.streamToken, ctx.signal, (stream) =>
        exec.exec(
          {
            ref: params.ref,
            command: params.command,
            tty: clampTty(params.tty),
            autoPrepare: params.autoPrepare,
          },
          stream,
          ctx,
        ),
      ),

    workspacePrepare: async (params, ctx) => {
      const result = await workspaces.prepare(
        {
          ref: params.ref,
          sourcePath: params.sourcePath,
          guestPath: params.guestPath,
          mode: params.mode,
          includeUntracked: params.includeUntracked,
          branch: params.branch,
          from: params.from,
          force: params.force,
        },
        ctx,
      );
      return { vm: result.vm.name, workspace: result.workspace, files: result.files, bytes: result.bytes, untrackedSkipped: result.untrackedSkipped };
    },

    workspaceExport: (params, ctx) =>
      withStream(streams, params.streamToken, ctx.signal, async (stream) => {
        const result = await workspaces.export({ ref: params.ref, baseCommit: params.baseCommit, stat: params.stat === true }, stream.stdout, ctx);
        return { vm: result.vm.name, baseCommit: result.baseCommit, files: result.files, bytes: result.bytes };
      }),
  };
}
