import { join } from 'node:path';
import type { Writable } from 'node:stream';

import type { GuestConnection, RunResult } from '../../guest/guest-connection.js';
import { BangerError } from '../../rpc/errors.js';
import type { ChangedFile, WorkspaceInfo, WorkspaceMode } from '../../rpc/methods.js';
import type { VmRecord, VmsRepo } from '../../store/vms-repo.js';
import { git, gitConfigValue } from '../../workspace/git.js';
import { gitMetadata } from '../../workspace/git-metadata.js';
import { DEFAULT_GUEST_PATH, validateGuestPath } from '../../workspace/guest-path.js';
import { DELETED_LIST, exportScript, importScript, isPlausibleRef, OVERLAY_DIR, preflightScript, SCRIPT_EXIT } from '../../workspace/guest-scripts.js';
import { inspectRepo, resolveCommit, validateBranchName, type RepoSnapshot } from '../../workspace/repo.js';
import { tarStream, type TarEntry } from '../../workspace/tar-writer.js';
import { KeyedLock } from '../keyed-lock.js';
import type { OpContext } from '../op-context.js';
import type { VmService } from '../vm/vm-service.js';
import { readExportHeader } from './export-header.js';

export interface PrepareParams {
  ref: string;
  sourcePath: string;
  guestPath?: string | undefined;
  mode?: WorkspaceMode | undefined;
  includeUntracked?: boolean | undefined;
  branch?: string | undefined;
  from?: string | undefined;
  force?: boolean | undefined;
}

export interface PrepareResult {
  vm: VmRecord;
  workspace: WorkspaceInfo;
  files: number;
  bytes: number;
  untrackedSkipped: number;
}

export interface ExportResult {
  vm: VmRecord;
  baseCommit: string;
  files: ChangedFile[];
  bytes: number;
}

/**
 * Workspaces: a host git repo copied into a guest (`prepare`), and the
 * guest's edits back out as a patch (`export`). Host-side checks run first,
 * so bad input changes nothing anywhere. The VM lock is held only to check
 * the VM runs (VmService.guest); guest I/O runs under this service's own
 * per-VM lock, so prepares and exports on one VM never interleave while
 * `vm stop`/`vm delete` stay free to end them (closing the connection makes
 * the I/O fail at once).
 */
export class WorkspaceService {
  readonly #deps: { vms: VmService; repo: VmsRepo };
  readonly #locks = new KeyedLock();

  constructor(deps: { vms: VmService; repo: VmsRepo }) {
    this.#deps = deps;
  }

  async prepare(params: PrepareParams, ctx: OpContext): Promise<PrepareResult> {
    const guestPath = validateGuestPath(params.guestPath ?? DEFAULT_GUEST_PATH);
    const mode = params.mode ?? 'shallow';
    if (params.from !== undefined && params.branch === undefined) {
      throw new BangerError('ERR_INVALID_ARGUMENT', '--from needs --branch: it names where the new guest branch starts', { hint: 'add --branch <name>' });
    }
    ctx.progress('inspect', `reading the repo at ${params.sourcePath}`);
    const snapshot = await inspectRepo(params.sourcePath, { includeUntracked: params.includeUntracked === true, mode, signal: ctx.signal });
    if (mode === 'full_copy' && !snapshot.standardGitDir) {
      throw new BangerError(
        'ERR_INVALID_ARGUMENT',
        `${snapshot.root} is a linked worktree (its git dir is ${snapshot.gitDir}); full_copy copies only a repo's own .git`,
        {
          hint: 'use --mode shallow, or prepare from the main checkout',
        },
      );
    }
    if (params.branch !== undefined) await validateBranchName(snapshot.root, params.branch);
    const from = params.from === undefined ? undefined : await resolveCommit(snapshot.root, params.from, ctx.signal);
    const identity = { name: await gitConfigValue(snapshot.root, 'user.name'), email: await gitConfigValue(snapshot.root, 'user.email') };

    const { vm, guest } = await this.#deps.vms.guest(params.ref);
    return this.#guestIo(vm, guest, 'prepare', ctx, async (signal) => {
      ctx.progress('preflight', `checking ${guestPath} in ${vm.name}`);
      this.#check(await guest.run(preflightScript(guestPath, { force: params.force === true }), { signal }), vm, guestPath);

      ctx.progress('metadata', mode === 'shallow' ? 'collecting recent history (shallow)' : 'collecting the whole .git (full_copy)');
      const metadata = await gitMetadata(snapshot, mode, from === undefined ? [] : [from], signal);
      try {
        const files = from === undefined ? snapshot.files : [];
        const entries = [...metadata.entries, ...workingTreeEntries(snapshot, mode, from !== undefined)];
        let bytes = 0;
        const detail = `copying ${files.length} files${from === undefined ? '' : ` (guest checks out ${from.slice(0, 12)})`} into ${vm.name}:${guestPath}`;
        ctx.progress('upload', detail);
        const tar = tarStream(entries, (total) => {
          bytes = total;
          ctx.progress('upload', detail, { current: total });
        });
        // However the import ends, the archive stops reading files (and closes the one it has open).
        const result = await guest
          .run(importScript({ guestPath, mode, branch: params.branch, from, identity, workingTree: from === undefined ? metadata.workingTree : undefined }), {
            stdin: tar,
            signal,
          })
          .finally(() => tar.destroy());
        this.#check(result, vm, guestPath);
        const workspace: WorkspaceInfo = {
          guestPath,
          sourcePath: snapshot.root,
          baseCommit: from ?? snapshot.head,
          sourceHead: snapshot.head,
          mode,
          branch: params.branch ?? null,
          includeUntracked: snapshot.includeUntracked,
          preparedAt: new Date().toISOString(),
        };
        this.#deps.repo.setWorkspace(vm.id, workspace);
        ctx.log.info({ vm: vm.name, guest_path: guestPath, files: files.length, bytes, mode }, 'workspace prepared');
        return { vm, workspace, files: files.length, bytes, untrackedSkipped: snapshot.includeUntracked ? 0 : snapshot.untracked };
      } finally {
        metadata.dispose();
      }
    });
  }

  /**
   * Streams a binary-safe patch (guest repo since the base: commits, edits,
   * new untracked files, deletions, modes) to `out`, unless `stat`.
   */
  async export(params: { ref: string; baseCommit?: string | undefined; stat: boolean }, out: Writable, ctx: OpContext): Promise<ExportResult> {
    const recorded = this.#deps.vms.find(params.ref);
    const workspace = recorded.workspace;
    if (workspace === null) {
      throw new BangerError('ERR_NO_WORKSPACE', `VM ${recorded.name} has no workspace`, {
        hint: `prepare one: banger vm workspace prepare ${recorded.name} <repo>`,
      });
    }
    const base = params.baseCommit ?? workspace.baseCommit;
    if (!isPlausibleRef(base))
      throw new BangerError('ERR_UNKNOWN_COMMIT', `"${base}" is not a commit name`, { hint: 'give a commit id, branch or tag of the guest repo' });
    const { vm, guest } = await this.#deps.vms.guest(params.ref);
    return this.#guestIo(vm, guest, 'export', ctx, async (signal) => {
      ctx.progress('export', `diffing ${vm.name}:${workspace.guestPath} against ${base.slice(0, 12)}`);
      const child = await guest.spawn(exportScript(workspace.guestPath, base, { stat: params.stat }));
      const onAbort = (): void => {
        child.kill();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.stdin.end();
        const header = readExportHeader(child.stdout, out);
        const [exit, parsed] = await Promise.all([child.exited, header.done]);
        signal.throwIfAborted();
        this.#check({ ...exit, stdout: Buffer.alloc(0), stderr }, vm, workspace.guestPath, base);
        if (parsed === undefined) throw new BangerError('ERR_GUEST_COMMAND_FAILED', `export from ${vm.name} produced no result: ${stderr.trim()}`);
        return { vm, baseCommit: parsed.base, files: parsed.files, bytes: parsed.patchBytes };
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    });
  }

  /**
   * The host repo's HEAD when it differs from the one the workspace was
   * prepared from (the workspace is stale); undefined when it is current or
   * cannot be told (the host repo moved or went away).
   */
  async staleHead(workspace: WorkspaceInfo): Promise<string | undefined> {
    const result = await git(workspace.sourcePath, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']).catch(() => undefined);
    if (result?.code !== 0) return undefined;
    const head = result.stdout.toString('utf8').trim();
    return head === workspace.sourceHead ? undefined : head;
  }

  /**
   * Runs guest I/O for one VM under its workspace lock: cancelled by the
   * request's signal or by the connection closing (the VM was stopped or
   * deleted meanwhile), which is then reported as such.
   */
  #guestIo<T>(vm: VmRecord, guest: GuestConnection, what: string, ctx: OpContext, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.#locks.run(vm.id, async () => {
      ctx.log.info({ vm: vm.name, what }, 'workspace lock acquired');
      try {
        return await this.#cancellable(vm, guest, what, ctx, fn);
      } finally {
        ctx.log.info({ vm: vm.name, what }, 'workspace lock released');
      }
    });
  }

  async #cancellable<T>(vm: VmRecord, guest: GuestConnection, what: string, ctx: OpContext, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = AbortSignal.any([ctx.signal, guest.closed]);
    try {
      return await fn(signal);
    } catch (error) {
      if (!ctx.signal.aborted && guest.closed.aborted) {
        throw new BangerError('ERR_VM_NOT_RUNNING', `VM ${vm.name} stopped during the workspace ${what}; nothing was changed`, {
          cause: error,
          hint: `start it again (banger vm start ${vm.name}) and rerun the ${what}`,
        });
      }
      throw error;
    }
  }

  /** Turns a script's exit status into the error it stands for. */
  #check(result: RunResult, vm: VmRecord, guestPath: string, base?: string): void {
    const detail = result.stderr.trim().split('\n').slice(-3).join(' | ');
    switch (result.code) {
      case 0:
        return;
      case SCRIPT_EXIT.gitMissing:
        throw new BangerError('ERR_GUEST_GIT_MISSING', `git is not installed in VM ${vm.name}`, {
          hint: 'use an image with git (the catalog images have it), or install it in the guest',
        });
      case SCRIPT_EXIT.tarMissing:
        throw new BangerError('ERR_GUEST_COMMAND_FAILED', `tar is not installed in VM ${vm.name}`, { hint: 'install tar in the guest' });
      case SCRIPT_EXIT.notBangerWorkspace:
        throw new BangerError('ERR_WORKSPACE_DIRTY', `${vm.name}:${guestPath} exists and is not a workspace banger prepared`, {
          hint: 'choose another --guest-path, or pass --force to replace it',
        });
      case SCRIPT_EXIT.workspaceChanged:
        throw new BangerError(
          'ERR_WORKSPACE_DIRTY',
          `the workspace ${vm.name}:${guestPath} has changes made in the guest; preparing again would discard them`,
          {
            hint: `save them first (banger vm workspace export ${vm.name} --output changes.patch), or pass --force to discard them`,
          },
        );
      case SCRIPT_EXIT.unknownCommit:
        throw new BangerError('ERR_UNKNOWN_COMMIT', `no commit "${base ?? '?'}" in ${vm.name}:${guestPath}`, {
          hint: 'give a commit the guest repo has (see `git log` in the guest)',
        });
      case SCRIPT_EXIT.noRepo:
        throw new BangerError('ERR_NO_WORKSPACE', `there is no git repo at ${vm.name}:${guestPath} any more`, {
          hint: `prepare it again: banger vm workspace prepare ${vm.name} <repo>`,
        });
      default:
        throw new BangerError(
          'ERR_GUEST_COMMAND_FAILED',
          `the guest command failed in ${vm.name} (${result.signal ?? `exit ${result.code ?? '?'}`}): ${detail}`,
          {
            hint: 'see `banger daemon logs` for the request',
          },
        );
    }
  }
}

/**
 * The working-tree part of an import's tar: everything for full_copy; for
 * shallow, only the files that differ from HEAD plus the list of deletions
 * (the guest checks HEAD out itself, see importScript); nothing with --from.
 */
function workingTreeEntries(snapshot: RepoSnapshot, mode: WorkspaceMode, from: boolean): TarEntry[] {
  if (from) return [];
  if (mode === 'full_copy') return snapshot.files.map((name) => ({ name, source: join(snapshot.root, name) }));
  return [
    ...snapshot.changed.map((name) => ({ name: `.git/${OVERLAY_DIR}/${name}`, source: join(snapshot.root, name) })),
    { name: `.git/${DELETED_LIST}`, content: Buffer.from(snapshot.deleted.map((p) => `${p}\0`).join(''), 'utf8'), mode: 0o600 },
  ];
}
