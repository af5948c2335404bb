import { randomBytes } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';

import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { BangerError } from '../../rpc/errors.js';
import type { WorkspaceExportResult, WorkspacePrepareResult } from '../../rpc/methods.js';
import { WORKSPACE_MODES, type WorkspaceMode } from '../../rpc/schemas.js';
import { DEFAULT_GUEST_PATH, validateGuestPath } from '../../workspace/guest-path.js';
import { SHALLOW_FETCH_DEPTH } from '../../workspace/modes.js';
import type { RepoSnapshot } from '../../workspace/repo.js';
import { createContext, type CliContext } from '../context.js';
import { formatBytes } from '../render/text.js';

/** The options `vm workspace prepare` and `vm run <path>` share. */
export interface WorkspaceOptions {
  guestPath: string;
  mode: WorkspaceMode;
  includeUntracked?: true;
  branch?: string;
  from?: string;
  dryRun?: true;
}

export function addWorkspaceOptions<T extends CommandUnknownOpts>(command: T): T {
  command
    .addOption(new Option('--guest-path <path>', 'where the repo goes in the guest (under /root)').default(DEFAULT_GUEST_PATH))
    .addOption(
      new Option('--mode <mode>', `shallow: the last ${SHALLOW_FETCH_DEPTH} commits of history; full_copy: the whole .git (needed for submodules)`)
        .choices(WORKSPACE_MODES)
        .default('shallow'),
    )
    .option('--include-untracked', 'also copy untracked files that are not ignored (ignored files are never copied)')
    .option('--branch <name>', 'create and check out this branch in the guest')
    .option('--from <ref>', "start --branch at this commit (the guest then has that commit's files, not your working tree)")
    .option('--dry-run', 'list exactly what would be copied and exit (needs no VM or daemon)');
  return command;
}

/** Host-side checks of a workspace request, before any VM is touched (the daemon repeats them). */
export async function checkWorkspace(path: string, options: WorkspaceOptions): Promise<RepoSnapshot> {
  validateGuestPath(options.guestPath);
  if (options.from !== undefined && options.branch === undefined) {
    throw new BangerError('ERR_USAGE', '--from needs --branch: it names where the new guest branch starts', { hint: 'add --branch <name>' });
  }
  const { inspectRepo, resolveCommit, validateBranchName } = await import('../../workspace/repo.js');
  const snapshot = await inspectRepo(path, { includeUntracked: options.includeUntracked === true, mode: options.mode });
  if (options.branch !== undefined) await validateBranchName(snapshot.root, options.branch);
  if (options.from !== undefined) await resolveCommit(snapshot.root, options.from);
  return snapshot;
}

/** `--dry-run`: the file list on stdout (one per line), what else would happen on stderr. */
export function printDryRun(cli: CliContext, snapshot: RepoSnapshot, options: WorkspaceOptions): void {
  const head = `${snapshot.head.slice(0, 12)}${snapshot.branch === null ? ' (detached)' : ` on ${snapshot.branch}`}`;
  const history =
    options.mode === 'shallow' ? `.git: the last ${SHALLOW_FETCH_DEPTH} commits of ${head}` : `.git: the whole repository (${head}), submodules included`;
  if (cli.out.json) {
    cli.out.result(
      {
        dryRun: true,
        mode: options.mode,
        root: snapshot.root,
        head: snapshot.head,
        branch: snapshot.branch,
        guestPath: options.guestPath,
        files: snapshot.files,
        untracked: snapshot.untracked,
        includeUntracked: snapshot.includeUntracked,
      },
      () => '',
    );
    return;
  }
  cli.out.notice(`dry run: would copy ${snapshot.root} to ${options.guestPath}, mode ${options.mode}`);
  cli.out.notice(history);
  if (options.from !== undefined)
    cli.out.notice(`--from ${options.from}: the guest checks that commit out on ${options.branch ?? '?'}; no working-tree files are copied`);
  cli.out.notice(`${snapshot.files.length} files${untrackedNote(snapshot) === undefined ? '' : `; ${untrackedNote(snapshot) ?? ''}`}:`);
  if (snapshot.files.length > 0) cli.out.line(snapshot.files.join('\n'));
}

function untrackedNote(snapshot: { untracked: number; includeUntracked: boolean }): string | undefined {
  if (snapshot.includeUntracked || snapshot.untracked === 0) return undefined;
  return `${snapshot.untracked} untracked file${snapshot.untracked === 1 ? ' was' : 's were'} not copied (--include-untracked copies them; ignored files never are)`;
}

/** Prepares a workspace through the daemon, showing its stages; says when untracked files were left out. */
export async function prepareWorkspace(
  cli: CliContext,
  ref: string,
  path: string,
  options: WorkspaceOptions & { force?: true },
): Promise<WorkspacePrepareResult> {
  const result = await cli.callWithProgress('workspacePrepare', {
    ref,
    sourcePath: resolve(path),
    guestPath: options.guestPath,
    mode: options.mode,
    ...(options.includeUntracked === true ? { includeUntracked: true } : {}),
    ...(options.branch === undefined ? {} : { branch: options.branch }),
    ...(options.from === undefined ? {} : { from: options.from }),
    ...(options.force === true ? { force: true } : {}),
  });
  const note = untrackedNote({ untracked: result.untrackedSkipped, includeUntracked: false });
  if (note !== undefined) cli.out.notice(`note: ${note}`);
  return result;
}

export function describePrepared(result: WorkspacePrepareResult): string {
  const ws = result.workspace;
  return `prepared ${result.vm}:${ws.guestPath} from ${ws.sourcePath} (${ws.mode}, base ${ws.baseCommit.slice(0, 12)}${ws.branch === null ? '' : `, branch ${ws.branch}`}): ${result.files} files, ${formatBytes(result.bytes)}`;
}

/**
 * Exports the guest's changes: the patch to `output` (written to a temp file
 * and renamed into place, so a failed export leaves no partial file) or to
 * stdout; with `stat`, only the file list.
 */
export async function exportWorkspace(
  cli: CliContext,
  ref: string,
  options: { baseCommit?: string | undefined; output?: string | undefined; stat: boolean; capture?: boolean },
): Promise<WorkspaceExportResult & { patch?: string }> {
  const target = options.output === undefined ? undefined : resolve(options.output);
  const temp = target === undefined ? undefined : join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
  const captured: Buffer[] = [];
  let sink: Writable;
  if (temp !== undefined) sink = createWriteStream(temp, { mode: 0o644 });
  else if (options.capture === true) {
    const collector = new PassThrough();
    collector.on('data', (chunk: Buffer) => captured.push(chunk));
    sink = collector;
  } else sink = process.stdout;
  const stream = await cli.openStream({ stdout: sink, stderr: process.stderr });
  try {
    const result = await cli.call('workspaceExport', {
      ref,
      streamToken: stream.token,
      ...(options.baseCommit === undefined ? {} : { baseCommit: options.baseCommit }),
      ...(options.stat ? { stat: true } : {}),
    });
    await stream.done;
    if (temp !== undefined && target !== undefined) {
      await new Promise<void>((done, fail) => {
        sink.once('error', fail);
        sink.end(done);
      });
      renameSync(temp, target);
    }
    return options.capture === true ? { ...result, patch: Buffer.concat(captured).toString('utf8') } : result;
  } finally {
    stream.close();
    if (temp !== undefined) {
      sink.destroy();
      rmSync(temp, { force: true });
    }
  }
}

export function workspaceCommand(): CommandUnknownOpts {
  const workspace = new Command('workspace').description("Copy a git repo into a VM, and get the guest's edits back as a patch").addHelpText(
    'after',
    `
Examples:
  banger vm workspace prepare box                  the repo around the current directory -> box:/root/repo
  banger vm workspace prepare box ../app --dry-run list exactly what would be copied
  banger vm exec box -- make test                  runs in /root/repo
  banger vm workspace export box | git apply       the guest's changes, applied here
  banger vm workspace export box --stat            just the changed files

Only files git tracks are copied (with your uncommitted edits); --include-untracked
adds untracked files that are not ignored. Ignored files (.env, build output) never are.`,
  );

  addWorkspaceOptions(workspace.command('prepare').description('Copy a git repo (tracked files, with your edits) into a running VM'))
    .argument('<vm>', 'name or id')
    .argument('[path]', 'a directory in the repo (default: the current directory)')
    .option('--force', 'replace a guest workspace even if it has changes of its own (they are lost)')
    .action(async (ref, path, options, command) => {
      const cli = createContext(command);
      const opts = options as typeof options & WorkspaceOptions;
      const source = path ?? process.cwd();
      if (opts.dryRun === true) {
        printDryRun(cli, await checkWorkspace(source, opts), opts);
        return;
      }
      // The daemon checks everything itself before it touches the guest.
      const result = await prepareWorkspace(cli, ref, source, { ...opts, ...(options.force === true ? { force: true as const } : {}) });
      cli.out.result(result, describePrepared);
    });

  workspace
    .command('export')
    .description('Print a patch of everything changed in the guest repo since the base (never changes the guest repo)')
    .argument('<vm>', 'name or id')
    .option('--base-commit <ref>', 'diff against this commit (default: the one the workspace was prepared from)')
    .option('-o, --output <file>', 'write the patch to a file instead of stdout')
    .option('--stat', 'list the changed files instead of printing the patch')
    .addHelpText(
      'after',
      '\nThe patch is binary-safe and includes commits made in the guest, uncommitted edits,\nnew files, deletions and mode changes: apply it with `git apply --binary` (or `git apply`).',
    )
    .action(async (ref, options, command) => {
      const cli = createContext(command);
      const stat = options.stat === true;
      const result = await exportWorkspace(cli, ref, {
        baseCommit: options.baseCommit,
        output: options.output,
        stat,
        capture: cli.out.json && !stat && options.output === undefined,
      });
      if (cli.out.json) {
        cli.out.result({ ...result, ...(options.output === undefined ? {} : { output: resolve(options.output) }) }, () => '');
        return;
      }
      const summary = `${result.files.length} file${result.files.length === 1 ? '' : 's'} changed in ${result.vm} since ${result.baseCommit.slice(0, 12)}`;
      if (stat) cli.out.result(result, (r) => [...r.files.map((f) => `${f.status}\t${f.path}`), summary].join('\n'));
      else if (options.output !== undefined) cli.out.notice(`${summary}: wrote ${formatBytes(result.bytes)} to ${options.output}`);
      else cli.out.notice(summary);
    });
  return workspace;
}
