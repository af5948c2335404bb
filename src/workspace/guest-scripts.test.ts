import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';

import { git, TestRepo } from '../../test/helpers/git-repo.js';
import { readExportHeader } from '../services/workspace/export-header.js';
import { execScript, exportScript, importScript, miseTrustLine, preflightScript, SCRIPT_EXIT } from './guest-scripts.js';

/**
 * The guest scripts are POSIX sh around git; export and exec touch nothing
 * outside the repo, so they run here on the host against real repos (the
 * e2e tests run all of them in real guests).
 */

const cleanup: (() => void)[] = [];
after(() => {
  for (const fn of cleanup) fn();
});

function runSh(script: string, env: NodeJS.ProcessEnv = process.env): { code: number; stdout: Buffer; stderr: string } {
  const result = spawnSync('sh', ['-c', script], { env, maxBuffer: 64 * 1024 * 1024 });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr.toString() };
}

async function exportOf(
  root: string,
  base: string,
  stat = false,
): Promise<{ code: number; base: string; files: { status: string; path: string }[]; patch: Buffer }> {
  const { code, stdout } = runSh(exportScript(root, base, { stat }));
  const source = new PassThrough();
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  const { done } = readExportHeader(source, sink);
  source.end(stdout);
  const header = await done;
  return { code, base: header?.base ?? '', files: header?.files ?? [], patch: Buffer.concat(chunks) };
}

describe('guest scripts', { timeout: 60_000 }, () => {
  test('every script is valid POSIX sh', () => {
    const identity = { name: "O'Brien", email: 'ob@example.com' };
    for (const script of [
      preflightScript('/root/repo', { force: false }),
      preflightScript('/root/repo', { force: true }),
      importScript({ guestPath: '/root/a/repo', mode: 'shallow', branch: undefined, from: undefined, identity, workingTree: 'a'.repeat(40) }),
      importScript({
        guestPath: '/root/repo',
        mode: 'full_copy',
        branch: 'feat',
        from: 'abc',
        identity: { name: undefined, email: undefined },
        workingTree: undefined,
      }),
      exportScript('/root/repo', 'HEAD', { stat: true }),
      execScript(['echo', "it's", '$(x)'], '/root/repo'),
    ]) {
      const check = spawnSync('sh', ['-n'], { input: script });
      assert.equal(check.status, 0, `${check.stderr.toString()}\n${script}`);
    }
    assert.match(miseTrustLine("/root/it's"), /^if command -v mise >\/dev\/null 2>&1; then mise trust --quiet --all '\/root\/it'\\''s' .*\|\| true; fi$/);
    assert.ok(
      importScript({ guestPath: '/root/repo', mode: 'shallow', branch: undefined, from: undefined, identity, workingTree: undefined }).includes(
        miseTrustLine('/root/repo'),
      ),
      'prepare trusts mise configs',
    );
  });

  test('export: commits, edits, new, deleted, binary and mode changes since the base, without touching the repo', async () => {
    const r = new TestRepo();
    cleanup.push(() => {
      r.remove();
    });
    r.write('README.md', 'one\n')
      .write('run.sh', '#!/bin/sh\n', 0o755)
      .write('blob.bin', Buffer.from([0, 1, 2, 3]))
      .write('gone.txt', 'bye\n')
      .write('.gitignore', '.env\n');
    const base = r.commit('base');
    r.write('README.md', 'one\ntwo\n').commit('a commit after the base');
    r.write('README.md', 'one\ntwo\nuncommitted\n')
      .write('new file é.txt', 'new\n')
      .write('blob.bin', Buffer.from([9, 9, 0, 1]))
      .write('.env', 'SECRET\n');
    unlinkSync(join(r.root, 'gone.txt'));
    chmodSync(join(r.root, 'run.sh'), 0o644);
    git(r.root, 'add', 'README.md'); // something staged, too
    const indexBefore = readFileSync(join(r.root, '.git', 'index'));
    const statusBefore = r.git('status', '--porcelain');
    const headBefore = r.head();

    const stat = await exportOf(r.root, base, true);
    assert.equal(stat.code, 0);
    assert.equal(stat.base, base);
    assert.equal(stat.patch.length, 0, 'stat prints no patch');
    assert.deepEqual(stat.files, [
      { status: 'M', path: 'README.md' },
      { status: 'M', path: 'blob.bin' },
      { status: 'D', path: 'gone.txt' },
      { status: 'A', path: 'new file é.txt' },
      { status: 'M', path: 'run.sh' },
    ]);
    const full = await exportOf(r.root, base);
    assert.equal(full.code, 0);
    assert.deepEqual(full.files, stat.files);

    assert.ok(readFileSync(join(r.root, '.git', 'index')).equals(indexBefore), 'the index is byte for byte the same');
    assert.equal(r.git('status', '--porcelain'), statusBefore);
    assert.equal(r.head(), headBefore);
    assert.deepEqual(
      readdirSync(join(r.root, '.git')).filter((f) => f.startsWith('banger-')),
      [],
      'no temporary index left behind',
    );

    // Applied to a clean checkout of the base, the patch reproduces the working tree.
    const clone = mkdtempSync(join(tmpdir(), 'banger-clone-'));
    cleanup.push(() => {
      rmSync(clone, { recursive: true, force: true });
    });
    execFileSync('git', ['clone', '-q', r.root, clone]);
    git(clone, 'checkout', '-q', base);
    const patchFile = join(clone, '..', `${clone.split('/').at(-1) ?? 'x'}.patch`);
    writeFileSync(patchFile, full.patch);
    cleanup.push(() => {
      rmSync(patchFile, { force: true });
    });
    git(clone, 'apply', '--binary', patchFile);
    for (const file of ['README.md', 'new file é.txt', 'blob.bin', 'run.sh']) {
      assert.ok(readFileSync(join(clone, file)).equals(readFileSync(join(r.root, file))), file);
    }
    assert.equal(lstatSync(join(clone, 'run.sh')).mode & 0o111, 0, 'the mode change came through');
    assert.throws(() => readFileSync(join(clone, 'gone.txt')), 'the deletion came through');
    assert.throws(() => readFileSync(join(clone, '.env')), 'ignored files are not exported');
  });

  test('export reports an unknown base and a missing repo by their exit codes', async () => {
    const r = new TestRepo().write('a', '1');
    cleanup.push(() => {
      r.remove();
    });
    r.commit();
    assert.equal((await exportOf(r.root, 'no-such-commit')).code, SCRIPT_EXIT.unknownCommit);
    const empty = mkdtempSync(join(tmpdir(), 'banger-norepo-'));
    cleanup.push(() => {
      rmSync(empty, { recursive: true, force: true });
    });
    assert.equal((await exportOf(empty, 'HEAD')).code, SCRIPT_EXIT.noRepo);
    assert.equal((await exportOf(join(empty, 'missing'), 'HEAD')).code, SCRIPT_EXIT.noRepo);
  });

  test('exec: runs in the workspace with argv intact, through mise when it is installed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'banger-exec-'));
    cleanup.push(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    const argv = ['sh', '-c', 'pwd; printf "<%s>" "$@"', 'arg0', "it's", 'two words', '$(reboot)', 'new\nline'];
    const plain = runSh(execScript(argv, dir));
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout.toString(), `${dir}\n<it's><two words><$(reboot)><new\nline>`);
    assert.equal(runSh(execScript(['sh', '-c', 'exit 42'], undefined)).code, 42, 'the exit status passes through');

    // A stand-in mise on PATH records how it was called, then runs the command.
    const bin = join(dir, 'bin');
    execFileSync('mkdir', [bin]);
    writeFileSync(join(bin, 'mise'), '#!/bin/sh\necho "mise $1 $2" >&2\nshift 2\nexec "$@"\n', { mode: 0o755 });
    const viaMise = runSh(execScript(['echo', 'hi'], dir), { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` });
    assert.equal(viaMise.stdout.toString(), 'hi\n');
    assert.equal(viaMise.stderr, 'mise exec --\n');
  });

  test("exec: an image's Env is exported and its WorkingDir used outside a workspace; its User only outside one", () => {
    const dir = mkdtempSync(join(tmpdir(), 'banger-exec-img-'));
    cleanup.push(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    const image = { env: ["GREETING=it's $HOME", 'bad name=x', 'EMPTY='], workingDir: dir, user: null };
    const result = runSh(execScript(['sh', '-c', 'pwd; printf "<%s>" "$GREETING" "$EMPTY"'], undefined, image));
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.toString(), `${dir}\n<it's $HOME><>`, 'values are literal, the bad name is skipped');
    const inWorkspace = runSh(execScript(['pwd'], '/', image));
    assert.equal(inWorkspace.stdout.toString(), '/\n', 'the workspace wins over WorkingDir');

    const asUser = execScript(['id', '-un'], undefined, { ...image, user: "o'brien" });
    assert.match(asUser, /^exec \/banger\/busybox su -s \/bin\/sh -c '.*' 'o'\\''brien'$/s);
    assert.equal(spawnSync('sh', ['-n'], { input: asUser }).status, 0);
    assert.ok(!execScript(['id'], '/root/repo', { ...image, user: 'node' }).includes(' su '), 'a workspace command runs as root');
  });
});
