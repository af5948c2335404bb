import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';

import { exitStatus, type GuestProcess } from '../../guest/guest-connection.js';
import { isForwardedSignal } from '../../guest/shell.js';
import { BangerError } from '../../rpc/errors.js';
import { execScript } from '../../workspace/guest-scripts.js';
import type { ClientStream } from '../client-stream.js';
import type { ImageService } from '../image/image-service.js';
import type { OpContext } from '../op-context.js';
import type { VmService } from '../vm/vm-service.js';
import type { WorkspaceService } from '../workspace/workspace-service.js';

export interface ExecParams {
  ref: string;
  command: readonly string[];
  tty?: { cols: number; rows: number; term: string } | undefined;
  autoPrepare?: boolean | undefined;
}

export interface ExecDeps {
  vms: VmService;
  workspaces: WorkspaceService;
  /** The image a VM was made from (its Env, WorkingDir and User apply). */
  images: Pick<ImageService, 'byId'>;
}

/**
 * `vm exec`: a command in a running VM over its open guest connection, with
 * the client's stdin, stdout and stderr streamed through, signals forwarded,
 * and the exit status passed back verbatim. It runs in the workspace when the
 * VM has one, saying once when that workspace is behind the host repo (or
 * re-preparing it first, with autoPrepare).
 */
export class ExecService {
  readonly #deps: ExecDeps;

  constructor(deps: ExecDeps) {
    this.#deps = deps;
  }

  async exec(params: ExecParams, io: ClientStream, ctx: OpContext): Promise<{ exitCode: number; signal: string | null }> {
    if (params.command.length === 0)
      throw new BangerError('ERR_USAGE', 'no command given', { hint: 'put the command after --, e.g. banger vm exec box -- ls' });
    const vm = this.#deps.vms.find(params.ref);
    const workspace = vm.workspace;
    // The host-side git check runs while the guest starts the command; only re-preparing waits for it.
    const stale = workspace === null ? Promise.resolve(undefined) : this.#deps.workspaces.staleHead(workspace);
    if (workspace !== null && params.autoPrepare === true) {
      const head = await stale;
      if (head !== undefined) {
        io.notice(
          `workspace ${vm.name}:${workspace.guestPath} is behind ${workspace.sourcePath} (${workspace.sourceHead.slice(0, 12)} → ${head.slice(0, 12)}): preparing it again`,
        );
        await this.#deps.workspaces.prepare(
          {
            ref: vm.id,
            sourcePath: workspace.sourcePath,
            guestPath: workspace.guestPath,
            mode: workspace.mode,
            includeUntracked: workspace.includeUntracked,
            branch: workspace.branch ?? undefined,
          },
          ctx,
        );
      }
    }
    const { guest } = await this.#deps.vms.guest(vm.id);
    const run = this.#deps.images.byId(vm.imageId)?.spec.oci?.run;
    const child = await guest.spawn(execScript(params.command, workspace?.guestPath, run), { pty: params.tty });
    const warned =
      workspace === null || params.autoPrepare === true
        ? Promise.resolve()
        : stale.then((head) => {
            if (head === undefined) return;
            io.notice(
              `warning: workspace ${vm.name}:${workspace.guestPath} is stale: prepared from ${workspace.sourceHead.slice(0, 12)}, ${workspace.sourcePath} is now at ${head.slice(0, 12)} (--auto-prepare re-syncs it)`,
            );
          });
    const result = await this.#attach(child, io, ctx);
    await warned;
    return result;
  }

  async #attach(child: GuestProcess, io: ClientStream, ctx: OpContext): Promise<{ exitCode: number; signal: string | null }> {
    const forward = (name: string): void => {
      if (!isForwardedSignal(name)) return;
      child.signal(name).catch((error: unknown) => {
        ctx.log.warn({ err: error, signal: name }, 'could not forward a signal');
      });
    };
    io.onSignal(forward);
    io.onResize((cols, rows) => {
      child.resize(cols, rows);
    });
    // The client going away (Ctrl-C twice, killed, disconnected) ends the command too.
    const stop = (): void => {
      forward('KILL');
    };
    const stopSignal = AbortSignal.any([ctx.signal, io.gone]);
    stopSignal.addEventListener('abort', stop, { once: true });
    child.stdin.on('error', () => undefined);
    io.stdin.pipe(child.stdin);
    try {
      const [exit] = await Promise.all([child.exited, drain(child.stdout, io.stdout), drain(child.stderr, io.stderr)]);
      ctx.signal.throwIfAborted();
      return { exitCode: exitStatus(exit), signal: exit.signal };
    } finally {
      stopSignal.removeEventListener('abort', stop);
      io.stdin.unpipe(child.stdin);
    }
  }
}

/** Copies `from` into `to` (without ending `to`) until `from` ends. */
async function drain(from: Readable, to: Writable): Promise<void> {
  from.pipe(to, { end: false });
  if (!from.readableEnded) await once(from, 'end');
}
