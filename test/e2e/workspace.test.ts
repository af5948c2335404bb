import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { VmInfo, WorkspaceExportResult, WorkspacePrepareResult } from '../../src/rpc/methods.js';
import { TestRepo } from '../helpers/git-repo.js';
import { BangerWorld, collect, waitFor, type CliResult, vmWorldOptions, userModeLabel } from '../integration/harness.js';

/**
 * Workspaces on real VMs: a repo copied in over the daemon's open guest
 * connection, edited in the guest, exported as a patch; `vm exec` streaming;
 * the locks between workspace I/O and the VM lifecycle. One VM (`ws`) is
 * shared by the tests that allow it.
 */
describe(`workspaces on real QEMU${userModeLabel()}`, { timeout: 1_800_000 }, () => {
  let world: BangerWorld;
  const repos: TestRepo[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'banger-ws-e2e-'));

  /** A repo with a local git identity (prepare carries it into the guest). */
  function newRepo(): TestRepo {
    const repo = new TestRepo();
    repo.git('config', 'user.name', 'Workspace Tester');
    repo.git('config', 'user.email', 'tester@banger.invalid');
    repos.push(repo);
    return repo;
  }

  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
    if (world.user !== undefined) chownSync(scratch, world.user.uid, world.user.gid);
    await world.json<VmInfo>(['vm', 'create', '--name', 'ws'], { timeoutMs: 900_000 });
  });
  after(() => {
    world.close();
    for (const repo of repos) repo.remove();
    rmSync(scratch, { recursive: true, force: true });
  });

  const exec = (vm: string, script: string, options: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<CliResult> =>
    world.run(['vm', 'exec', vm, '--', 'sh', '-c', script], options);

  /** Runs a guest script that must succeed; returns its stdout. */
  async function guest(vm: string, script: string): Promise<string> {
    const result = await exec(vm, script);
    assert.equal(result.code, 0, `guest script failed (${script}): ${result.stderr}`);
    return result.stdout;
  }

  /** Everything about a guest repo an operation could change: files, index bytes, HEAD, status. */
  const fingerprint = (vm: string, path: string): Promise<string> =>
    guest(
      vm,
      `cd ${path} && git rev-parse HEAD && md5sum .git/index && git status --porcelain && find . -path ./.git -prune -o -print | sort | while read -r f; do [ -L "$f" ] && readlink "$f"; [ -f "$f" ] && md5sum "$f"; stat -c '%a %n' "$f"; done`,
    );

  function errorCode(result: CliResult): string {
    assert.notEqual(result.code, 0, `expected a failure: ${result.stdout}`);
    return (JSON.parse(result.stdout) as { error: { code: string } }).error.code;
  }

  test('--dry-run lists exactly git ls-files (plus untracked with the flag), with no daemon and nothing created', async () => {
    const fresh = new BangerWorld();
    try {
      const repo = newRepo().write('a.txt', 'a\n').write('dir/b c é.txt', 'b\n').write('.gitignore', '.env\n').symlink('link', 'a.txt');
      repo.commit();
      repo.write('.env', 'SECRET=1\n').write('note.txt', 'untracked\n');
      const dry = await fresh.run(['vm', 'workspace', 'prepare', 'nosuchvm', repo.root, '--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual(dry.stdout.trim().split('\n'), repo.lsFiles().sort());
      assert.match(dry.stderr, /mode shallow/);
      assert.match(dry.stderr, /1 untracked file was not copied \(--include-untracked/);
      const withUntracked = await fresh.json<{ files: string[]; mode: string }>([
        'vm',
        'run',
        repo.root,
        '--include-untracked',
        '--mode',
        'full_copy',
        '--dry-run',
      ]);
      assert.deepEqual(withUntracked.files, [...repo.lsFiles(), ...repo.lsFiles('--others', '--exclude-standard')].sort());
      assert.equal(withUntracked.mode, 'full_copy');
      assert.ok(!withUntracked.files.includes('.env'));
      assert.deepEqual(fresh.daemonPids(), [], 'no daemon was started');
      assert.equal(existsSync(fresh.layout.stateDir), false, 'no state was created');
      assert.equal(existsSync(fresh.layout.runtimeDir), false);
    } finally {
      fresh.close();
    }
  });

  test('round trip: prepare, edit in the guest, export; the patch reproduces the guest tree and the guest repo is untouched', async () => {
    const repo = newRepo()
      .write('README.md', 'hello\n')
      .write('src/app.c', 'int main(void) { return 0; }\n')
      .write('tools/run.sh', '#!/bin/sh\necho run\n', 0o755)
      .write('assets/logo.bin', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) % 256)))
      .write('docs/a file with spaces ü.txt', 'unicode\n')
      .write('.gitignore', '.env\n')
      .symlink('latest', 'README.md');
    const base = repo.commit('base');
    repo.write('.env', 'API_KEY=secret\n').write('note.txt', 'a note, untracked\n');

    const prepared = await world.json<WorkspacePrepareResult>(['vm', 'workspace', 'prepare', 'ws', repo.root], { timeoutMs: 300_000 });
    assert.equal(prepared.workspace.baseCommit, base);
    assert.equal(prepared.workspace.guestPath, '/root/repo');
    assert.equal(prepared.files, repo.lsFiles().length);
    assert.equal(prepared.untrackedSkipped, 1);
    assert.equal(await guest('ws', 'cd /root/repo && git rev-parse HEAD && git status --porcelain'), `${base}\n`, 'a clean checkout of the base');
    assert.equal(
      await guest('ws', 'cd /root/repo && ls -a | sort | tr "\\n" " "'),
      '. .. .git .gitignore README.md assets docs latest src tools ',
      'no .env, no untracked note',
    );
    const shown = await world.json<VmInfo>(['vm', 'show', 'ws']);
    assert.equal(shown.workspace?.sourcePath, repo.root);
    assert.match((await world.run(['vm', 'list'])).stdout, /WORKSPACE[\s\S]*ws .*@[0-9a-f]{8}/);

    // vm exec runs in the workspace.
    assert.equal((await guest('ws', 'pwd')).trim(), '/root/repo');
    await guest(
      'ws',
      [
        'echo more >> README.md && git commit -qam "guest commit"',
        'echo new > src/new.c && git add src/new.c && git commit -qm "guest adds a file"',
        'git rm -q src/app.c && git commit -qm "guest deletes a file"',
        'printf "\\000\\377binary" >> assets/logo.bin',
        'chmod -x tools/run.sh',
        'echo "uncommitted edit" > "docs/a file with spaces ü.txt"',
        'echo untracked > guest-note.txt',
      ].join(' && '),
    );
    const before = await fingerprint('ws', '/root/repo');
    const patchPath = join(scratch, 'round-trip.patch');
    const exported = await world.json<WorkspaceExportResult>(['vm', 'workspace', 'export', 'ws', '--output', patchPath]);
    assert.equal(exported.baseCommit, base);
    assert.deepEqual(exported.files.map((f) => `${f.status} ${f.path}`).sort(), [
      'A guest-note.txt',
      'A src/new.c',
      'D src/app.c',
      'M README.md',
      'M assets/logo.bin',
      'M docs/a file with spaces ü.txt',
      'M tools/run.sh',
    ]);
    assert.equal(await fingerprint('ws', '/root/repo'), before, 'export changed nothing: files, index bytes, HEAD, status');

    const stdoutPatch = await world.run(['vm', 'workspace', 'export', 'ws'], { timeoutMs: 120_000 });
    assert.equal(stdoutPatch.code, 0, stdoutPatch.stderr);
    assert.equal(stdoutPatch.stdout, readFileSync(patchPath, 'utf8'), 'stdout carries the same patch');
    const stat = await world.run(['vm', 'workspace', 'export', 'ws', '--stat']);
    assert.match(stat.stdout, /^D\tsrc\/app\.c$/m);

    // Applied to a clean clone at the base, the patch reproduces the guest's working tree byte for byte.
    const clone = join(scratch, 'clone');
    execFileSync('git', ['clone', '-q', repo.root, clone]);
    execFileSync('git', ['-C', clone, 'checkout', '-q', base]);
    execFileSync('git', ['-C', clone, 'apply', '--binary', patchPath]);
    const guestTree = join(scratch, 'guest-tree');
    execFileSync('mkdir', ['-p', guestTree]);
    const tar = await collectBinary(world, ['vm', 'exec', 'ws', '--', 'tar', '-C', '/root/repo', '--exclude=./.git', '-cf', '-', '.']);
    execFileSync('tar', ['-x', '-f', '-', '-C', guestTree], { input: tar });
    assert.deepEqual(manifest(clone), manifest(guestTree));
  });

  test("the guest gets the host's working tree: uncommitted edits, deletions, staged files, mode and type changes", async () => {
    const repo = newRepo()
      .write('same.txt', 'same\n')
      .write('edited.txt', 'before\n')
      .write('gone.txt', 'gone\n')
      .write('tools/run.sh', '#!/bin/sh\n', 0o755)
      .write('target.txt', 'target\n')
      .write('deep/dir/keep.txt', 'keep\n')
      .symlink('swap', 'target.txt');
    const base = repo.commit();
    repo.write('edited.txt', 'after, not committed\n').write('deep/dir/new-staged.txt', 'staged\n').write('untracked.txt', 'not shipped\n');
    repo.git('add', 'deep/dir/new-staged.txt');
    rmSync(join(repo.root, 'gone.txt'));
    chmodSync(join(repo.root, 'tools/run.sh'), 0o644);
    rmSync(join(repo.root, 'swap'));
    writeFileSync(join(repo.root, 'swap'), 'a file where a symlink was\n');

    const prepared = await world.json<WorkspacePrepareResult>(['vm', 'workspace', 'prepare', 'ws', repo.root, '--force'], { timeoutMs: 300_000 });
    assert.equal(prepared.workspace.baseCommit, base);
    const tar = await collectBinary(world, ['vm', 'exec', 'ws', '--', 'tar', '-C', '/root/repo', '--exclude=./.git', '-cf', '-', '.']);
    const guestTree = join(scratch, 'guest-worktree');
    execFileSync('mkdir', ['-p', guestTree]);
    execFileSync('tar', ['-x', '-f', '-', '-C', guestTree], { input: tar });
    const shipped = repo.lsFiles().filter((p) => lstatSync(join(repo.root, p), { throwIfNoEntry: false }) !== undefined);
    assert.deepEqual(manifest(guestTree), manifest(repo.root, shipped));
    // A shallow workspace's index is HEAD's: the host's edits (staged or not) are changes in the guest.
    assert.deepEqual((await guest('ws', 'git status --porcelain')).split('\n').filter(Boolean).sort(), [
      ' D gone.txt',
      ' M edited.txt',
      ' M tools/run.sh',
      ' T swap',
      '?? deep/dir/new-staged.txt',
    ]);
  });

  test('--include-untracked ships the untracked note but never the ignored .env; a changed workspace needs --force', async () => {
    const repo = newRepo().write('a.txt', 'a\n').write('.gitignore', '.env\n');
    repo.commit();
    repo.write('.env', 'SECRET=1\n').write('note.txt', 'note\n');
    await guest('ws', 'echo work done in the guest > guest-work.txt');
    const refused = await world.run(['vm', 'workspace', 'prepare', 'ws', repo.root, '--include-untracked', '--json']);
    assert.equal(errorCode(refused), 'ERR_WORKSPACE_DIRTY', 'the workspace has work done in the guest');
    assert.equal(await guest('ws', 'cat guest-work.txt'), 'work done in the guest\n', 'and it is still there');
    const prepared = await world.json<WorkspacePrepareResult>(['vm', 'workspace', 'prepare', 'ws', repo.root, '--include-untracked', '--force']);
    assert.equal(prepared.untrackedSkipped, 0);
    assert.equal(await guest('ws', 'ls -a /root/repo | sort | tr "\\n" " "'), '. .. .git .gitignore a.txt note.txt ');
    assert.equal((await guest('ws', 'cd /root/repo && git status --porcelain')).trim(), '?? note.txt');
    // Unchanged since prepare (untracked note included), so preparing again needs no --force.
    await world.json<WorkspacePrepareResult>(['vm', 'workspace', 'prepare', 'ws', repo.root, '--include-untracked']);
  });

  test('bad input gets its error code and leaves the guest repo as it was', async () => {
    const good = newRepo().write('a.txt', 'a\n');
    good.commit();
    await world.json(['vm', 'workspace', 'prepare', 'ws', good.root, '--force']);
    const before = await fingerprint('ws', '/root/repo');

    const notRepo = mkdtempSync(join(scratch, 'plain-'));
    chmodSync(notRepo, 0o755); // readable by the user banger may run as: not a repo, rather than unreadable
    const empty = newRepo();
    const unsafe = newRepo().write('a.txt', 'a\n');
    unsafe.commit();
    unsafe.craftIndex(['../escape', 'a.txt'], 'HEAD:a.txt');
    const dotGit = newRepo().write('a.txt', 'a\n');
    dotGit.commit();
    dotGit.craftIndex(['a.txt', 'sub/.git/hooks/post-checkout'], 'HEAD:a.txt');
    const sub = newRepo().write('lib.c', 'lib\n');
    sub.commit();
    const withSubmodule = newRepo().write('main.c', 'main\n');
    withSubmodule.commit();
    withSubmodule.git('-c', 'protocol.file.allow=always', 'submodule', '--quiet', 'add', sub.root, 'vendor/lib');
    withSubmodule.commit('submodule');
    await world.json<VmInfo>(['vm', 'create', '--name', 'idle', '--no-start']);

    const cases: [string[], string][] = [
      [['vm', 'workspace', 'prepare', 'ws', notRepo], 'ERR_NOT_A_GIT_REPO'],
      [['vm', 'workspace', 'prepare', 'ws', join(notRepo, 'missing')], 'ERR_NOT_A_GIT_REPO'],
      [['vm', 'workspace', 'prepare', 'ws', empty.root], 'ERR_REPO_NO_COMMITS'],
      [['vm', 'workspace', 'prepare', 'ws', unsafe.root], 'ERR_REPO_UNSAFE_PATH'],
      [['vm', 'workspace', 'prepare', 'ws', dotGit.root], 'ERR_REPO_UNSAFE_PATH'],
      [['vm', 'workspace', 'prepare', 'ws', withSubmodule.root], 'ERR_SUBMODULES_NEED_FULL_COPY'],
      [['vm', 'workspace', 'prepare', 'ws', good.root, '--guest-path', '/etc/repo'], 'ERR_GUEST_PATH_INVALID'],
      [['vm', 'workspace', 'prepare', 'ws', good.root, '--guest-path', '/root/x;reboot'], 'ERR_GUEST_PATH_INVALID'],
      [['vm', 'workspace', 'prepare', 'ws', good.root, '--guest-path', '/root/$(id)'], 'ERR_GUEST_PATH_INVALID'],
      [['vm', 'workspace', 'prepare', 'ws', good.root, '--branch', 'x', '--from', 'no-such-ref'], 'ERR_UNKNOWN_COMMIT'],
      [['vm', 'workspace', 'prepare', 'ws', good.root, '--from', 'HEAD'], 'ERR_INVALID_ARGUMENT'],
      [['vm', 'workspace', 'prepare', 'ws', good.root, '--branch', 'bad..name'], 'ERR_INVALID_ARGUMENT'],
      [['vm', 'workspace', 'export', 'ws', '--base-commit', 'no-such-commit'], 'ERR_UNKNOWN_COMMIT'],
      [['vm', 'workspace', 'export', 'ws', '--base-commit', '--upload-pack=touch /tmp/x'], 'ERR_UNKNOWN_COMMIT'],
      [['vm', 'workspace', 'prepare', 'idle', good.root], 'ERR_VM_NOT_RUNNING'],
      [['vm', 'workspace', 'export', 'idle'], 'ERR_NO_WORKSPACE'],
      [['vm', 'exec', 'idle', '--', 'true'], 'ERR_VM_NOT_RUNNING'],
    ];
    for (const [args, expected] of cases) {
      const result = await world.run([...args, '--json'], { timeoutMs: 120_000 });
      assert.equal(errorCode(result), expected, `banger ${args.join(' ')}: ${result.stdout}`);
    }
    // A guest without git: hide it (the root is the VM's own overlay), and put it back.
    await guest('ws', 'mv /usr/bin/git /usr/bin/git.hidden');
    try {
      assert.equal(errorCode(await world.run(['vm', 'workspace', 'prepare', 'ws', good.root, '--force', '--json'])), 'ERR_GUEST_GIT_MISSING');
      assert.equal(errorCode(await world.run(['vm', 'workspace', 'export', 'ws', '--json'])), 'ERR_GUEST_GIT_MISSING');
    } finally {
      await guest('ws', 'mv /usr/bin/git.hidden /usr/bin/git');
    }
    assert.equal(await fingerprint('ws', '/root/repo'), before, 'no bad input changed the guest repo');
    assert.equal(await guest('ws', 'ls -d /root/.banger-staging-* 2>/dev/null | wc -l'), '0\n');
    await world.json<VmInfo>(['vm', 'delete', 'idle']);
  });

  test('a host commit makes vm exec warn that the workspace is stale; --auto-prepare brings it in; the record survives a daemon restart', async () => {
    const repo = newRepo().write('version', '1\n');
    const first = repo.commit('v1');
    await world.json(['vm', 'workspace', 'prepare', 'ws', repo.root, '--force']);
    const current = await exec('ws', 'cat version');
    assert.equal(current.stdout, '1\n');
    assert.doesNotMatch(current.stderr, /stale/);

    const second = repo.write('version', '2\n').commit('v2');
    const stale = await exec('ws', 'cat version');
    assert.equal(stale.code, 0);
    assert.equal(stale.stdout, '1\n', 'without --auto-prepare the guest keeps what it had');
    assert.equal(stale.stderr.match(/workspace ws:\/root\/repo is stale/g)?.length, 1, `warned once: ${stale.stderr}`);
    assert.match(stale.stderr, new RegExp(`${first.slice(0, 12)}.*${second.slice(0, 12)}`));

    const synced = await world.run(['vm', 'exec', 'ws', '--auto-prepare', '--', 'sh', '-c', 'cat version; git rev-parse HEAD'], { timeoutMs: 300_000 });
    assert.equal(synced.code, 0, synced.stderr);
    assert.equal(synced.stdout, `2\n${second}\n`);
    assert.doesNotMatch((await exec('ws', 'true')).stderr, /stale/, 'current again');

    const daemonPid = (await world.json<{ pid: number }>(['daemon', 'status'])).pid;
    assert.equal((await world.run(['daemon', 'stop'])).code, 0);
    const { vms } = await world.json<{ vms: VmInfo[] }>(['vm', 'list']);
    assert.notEqual((await world.json<{ pid: number }>(['daemon', 'status'])).pid, daemonPid, 'a new daemon');
    const ws = vms.find((vm) => vm.name === 'ws');
    assert.equal(ws?.workspace?.baseCommit, second);
    assert.equal(ws.workspace.sourcePath, repo.root);
    assert.equal(ws.workspace.mode, 'shallow');
    assert.equal((await exec('ws', 'cat version')).stdout, '2\n', 'the new daemon reopens the guest connection on demand');
  });

  test('vm exec streams: output before the command ends, stdin in, exit status and signals through', async () => {
    const child = world.spawn(['vm', 'exec', 'ws', '--', 'sh', '-c', 'echo first; sleep 4; echo second']);
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const done = collect(child, 60_000);
    await waitFor('the first line', () => out.includes('first\n'), 30_000);
    assert.equal(child.exitCode, null, 'the command is still running when its first line arrives');
    assert.doesNotMatch(out, /second/);
    const result = await done;
    assert.equal(result.code, 0);
    assert.equal(out, 'first\nsecond\n');

    const input = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 131 + 7) % 256));
    const echoed = await collectBinary(world, ['vm', 'exec', 'ws', '--', 'cat'], input);
    assert.ok(echoed.equals(input), `3 MiB of binary stdin came back unchanged (${echoed.length} bytes)`);
    const counted = await world.run(['vm', 'exec', 'ws', '--', 'wc', '-l'], { input: 'a\nb\nc\n' });
    assert.equal(counted.stdout.trim(), '3');
    assert.equal((await world.run(['vm', 'exec', 'ws', '-n', '--', 'wc', '-c'], { input: 'ignored' })).stdout.trim(), '0', '-n: no stdin');

    const failing = await exec('ws', 'echo out; echo err >&2; exit 42');
    assert.equal(failing.code, 42);
    assert.equal(failing.stdout, 'out\n');
    assert.equal(failing.stderr, 'err\n');

    const tty = await world.run(['vm', 'exec', 'ws', '-t', '--', 'tty']);
    assert.equal(tty.code, 0, tty.stderr);
    assert.match(tty.stdout, /^\/dev\/pts\/\d+\r?\n$/, '-t gives the command a terminal');
    assert.equal((await world.run(['vm', 'exec', 'ws', '--', 'tty'])).stdout.trim(), 'not a tty');

    // Ctrl-C reaches the guest command's process group.
    const interrupted = world.spawn(['vm', 'exec', 'ws', '--', 'sh', '-c', 'echo ready; sleep 1000; echo survived']);
    let ready = '';
    interrupted.stdout?.on('data', (chunk: Buffer) => (ready += chunk.toString()));
    const stopped = collect(interrupted, 60_000);
    await waitFor('the command to start', () => ready.includes('ready'), 30_000);
    assert.match((await exec('ws', '/banger/busybox pidof sleep')).stdout, /^\d+\n$/, 'the guest command runs');
    interrupted.kill('SIGINT');
    const ended = await stopped;
    assert.equal(ended.code, 130, ended.stderr);
    assert.doesNotMatch(ready, /survived/);
    assert.equal((await exec('ws', '/banger/busybox pidof sleep || echo none')).stdout.trim(), 'none', 'sleep is gone from the guest');
  });

  test('locks: vm stop ends a stalled import and leaves nothing half-written; concurrent prepares run one at a time', async () => {
    const big = newRepo();
    for (let i = 0; i < 8; i++) big.write(`blob-${i}.bin`, randomBytesOf(4 * 1024 * 1024, i));
    big.commit();
    const before = (await world.json<VmInfo>(['vm', 'show', 'ws'])).workspace;

    const prepare = world.spawn(['vm', 'workspace', 'prepare', 'ws', big.root, '--guest-path', '/root/stall', '--json']);
    const prepared = collect(prepare, 600_000);
    // Stall the import: stop the guest's tar mid-stream.
    await waitFor(
      "the guest's tar to start",
      async () => (await exec('ws', 'p=$(/banger/busybox pidof tar) && /banger/busybox kill -STOP $p && echo stalled')).stdout.includes('stalled'),
      120_000,
    );
    const stop = await world.run(['vm', 'stop', 'ws', '--json'], { timeoutMs: 120_000 });
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((JSON.parse(stop.stdout) as VmInfo).state, 'stopped');
    const outcome = await prepared;
    assert.equal(errorCode(outcome), 'ERR_VM_NOT_RUNNING', 'the import was ended by the stop, not waited for');
    assert.deepEqual((await world.json<VmInfo>(['vm', 'show', 'ws'])).workspace, before, 'nothing recorded');

    await world.json<VmInfo>(['vm', 'start', 'ws'], { timeoutMs: 300_000 });
    assert.equal(await guest('ws', 'ls -a /root | grep -c -e "^stall$" -e "^.banger-staging" || true'), '0\n', 'no half-written workspace, no staging left');

    // Three prepares of one VM at once: all succeed, and their guest I/O never overlaps.
    const small = newRepo().write('x', 'x\n');
    small.commit();
    const runs = await Promise.all(
      [1, 2, 3].map(() =>
        world.run(['vm', 'workspace', 'prepare', 'ws', small.root, '--guest-path', '/root/concurrent', '--force', '--json'], { timeoutMs: 300_000 }),
      ),
    );
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    const lockEvents = world
      .logLines()
      .filter((l) => (l.msg === 'workspace lock acquired' || l.msg === 'workspace lock released') && l.vm === 'ws')
      .slice(-6)
      .map((l) => [l.msg, l.op_id]);
    assert.equal(lockEvents.length, 6);
    for (let i = 0; i < 6; i += 2) {
      assert.equal(lockEvents[i]?.[0], 'workspace lock acquired');
      assert.equal(lockEvents[i + 1]?.[0], 'workspace lock released');
      assert.equal(lockEvents[i]?.[1], lockEvents[i + 1]?.[1], 'each prepare releases before the next one starts');
    }
    assert.equal(new Set(lockEvents.map((e) => e[1])).size, 3);
    assert.equal(await guest('ws', 'cat /root/concurrent/x'), 'x\n');
  });

  test("vm run <repo> --rm --export: the patch of the guest's edits and no VM left; SIGTERM to vm run --rm leaves nothing", async () => {
    const repo = newRepo().write('README.md', 'readme\n');
    repo.commit();
    const vmmsBefore = world.vmmPids().length;
    const linksBefore = world.links().length;
    const patch = join(scratch, 'run.patch');
    const run = await world.run(['vm', 'run', repo.root, '--rm', '--export', patch, '--', 'sh', '-c', 'echo hi > new.txt; pwd'], { timeoutMs: 600_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '/root/repo\n');
    const text = readFileSync(patch, 'utf8');
    assert.match(text, /^diff --git a\/new\.txt b\/new\.txt\nnew file mode 100644\n/);
    assert.match(text, /^\+hi$/m);
    execFileSync('git', ['-C', repo.root, 'apply', '--check', patch]);
    assert.deepEqual(
      (await world.json<{ vms: VmInfo[] }>(['vm', 'list'])).vms.map((vm) => vm.name),
      ['ws'],
    );
    assert.equal(world.vmmPids().length, vmmsBefore);

    // No command: a shell in the workspace (stdin is its input).
    const shell = await world.run(['vm', 'run', repo.root, '--rm'], { input: 'pwd; exit 3\n', timeoutMs: 600_000 });
    assert.equal(shell.code, 3, shell.stderr);
    assert.match(shell.stdout, /^\/root\/repo$/m);

    const child = world.spawn(['vm', 'run', '--rm', '--', 'sh', '-c', 'echo ready; sleep 1000']);
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const ended = collect(child, 600_000);
    await waitFor('the command to start', () => out.includes('ready'), 600_000);
    child.kill('SIGTERM');
    const result = await ended;
    assert.notEqual(result.code, 0);
    assert.deepEqual(
      (await world.json<{ vms: VmInfo[] }>(['vm', 'list'])).vms.map((vm) => vm.name),
      ['ws'],
      'the VM was deleted',
    );
    assert.equal(world.vmmPids().length, vmmsBefore, 'no qemu left');
    assert.equal(world.links().length, linksBefore, 'no tap left');
    assert.deepEqual(readdirSync(world.layout.vmsDir).length, 1, 'only ws keeps a directory');
  });
});

/** Runs the CLI and returns its stdout as bytes (for binary output). */
async function collectBinary(world: BangerWorld, args: string[], input?: Buffer): Promise<Buffer> {
  const child = world.spawn(args, { stdin: input === undefined ? 'ignore' : 'pipe' });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (input !== undefined) child.stdin?.end(input);
  const result = await collect(child, 120_000);
  assert.equal(result.code, 0, result.stderr);
  return Buffer.concat(chunks);
}

/** Path → kind, exec bit and content hash (or symlink target): for `paths`, or every file under `root` but .git. */
function manifest(root: string, paths?: readonly string[]): Record<string, string> {
  const entries: Record<string, string> = {};
  const describe = (path: string): void => {
    const full = join(root, path);
    const stat = lstatSync(full);
    if (stat.isSymbolicLink()) entries[path] = `link ${readlinkSync(full)}`;
    else entries[path] = `file ${(stat.mode & 0o111) === 0 ? '644' : '755'} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
  };
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (path === '.git') continue;
      if (lstatSync(join(root, path)).isDirectory()) walk(path);
      else describe(path);
    }
  };
  if (paths === undefined) walk('');
  else for (const path of paths) describe(path);
  return Object.fromEntries(Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Incompressible bytes (so a transfer takes time), different per seed. */
function randomBytesOf(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x9e3779b9 ^ seed;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, i);
  }
  return out;
}
