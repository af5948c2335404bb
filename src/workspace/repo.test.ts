import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { TestRepo } from '../../test/helpers/git-repo.js';
import { BangerError, type ErrorCode } from '../rpc/errors.js';
import { inspectRepo, resolveCommit, validateBranchName } from './repo.js';

const repos: TestRepo[] = [];
function repo(): TestRepo {
  const r = new TestRepo();
  repos.push(r);
  return r;
}
after(() => {
  for (const r of repos) r.remove();
});

function code(expected: ErrorCode, pattern?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof BangerError, String(error));
    assert.equal(error.code, expected, error.message);
    if (pattern !== undefined) assert.match(error.message, pattern);
    assert.ok((error.hint ?? '') !== '', 'every refusal says what to do');
    return true;
  };
}

describe('inspectRepo: what a workspace ships', { timeout: 60_000 }, () => {
  test('tracked files as they are in the working tree; untracked only when asked; ignored never', async () => {
    const r = repo()
      .write('README.md', 'hi\n')
      .write('src/main.c', 'int main;\n')
      .write('.gitignore', '.env\nbuild/\n')
      .write('file with spaces é.txt', 'u\n')
      .symlink('link', 'README.md');
    r.commit();
    r.write('.env', 'SECRET=1\n').write('build/out.o', 'x').write('note.txt', 'n\n').write('src/new.c', 'n\n');
    r.write('README.md', 'edited, not committed\n');

    const tracked = await inspectRepo(join(r.root, 'src'), { includeUntracked: false, mode: 'shallow' });
    assert.equal(tracked.root, r.root);
    assert.deepEqual(tracked.files, r.lsFiles().sort(), 'exactly git ls-files');
    assert.equal(tracked.untracked, 2, 'note.txt and src/new.c are untracked; .env and build/ are ignored');
    assert.equal(tracked.head, r.head());
    assert.equal(tracked.branch, 'main');
    assert.equal(tracked.standardGitDir, true);

    const withUntracked = await inspectRepo(r.root, { includeUntracked: true, mode: 'shallow' });
    assert.deepEqual(withUntracked.files, [...r.lsFiles(), 'note.txt', 'src/new.c'].sort());
    assert.ok(!withUntracked.files.some((f) => f === '.env' || f.startsWith('build/')), 'ignored files never ship');
  });

  test('a tracked file deleted on disk is not shipped (the guest sees it deleted)', async () => {
    const r = repo().write('a', '1').write('b', '2');
    r.commit();
    unlinkSync(join(r.root, 'b'));
    assert.deepEqual((await inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' })).files, ['a']);
  });

  test('changed and deleted: what differs from HEAD, so a shallow prepare ships only that', async () => {
    const r = repo()
      .write('same', 's\n')
      .write('edited', 'e\n')
      .write('gone', 'g\n')
      .write('unstaged-rm', 'u\n')
      .write('run', '#!/bin/sh\n', 0o755)
      .write('link-target', 't\n');
    r.symlink('swapped', 'link-target');
    r.commit();
    r.write('edited', 'edited now\n').write('staged-new', 'n\n').write('untracked', 'u\n');
    r.git('add', 'staged-new');
    r.git('rm', '-q', 'gone');
    r.git('rm', '-q', '--cached', 'unstaged-rm'); // staged deletion, file still on disk: now untracked
    chmodSync(join(r.root, 'run'), 0o644);
    unlinkSync(join(r.root, 'swapped'));
    writeFileSync(join(r.root, 'swapped'), 'a file now\n');
    const tracked = await inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' });
    assert.deepEqual(tracked.changed, ['edited', 'run', 'staged-new', 'swapped']);
    assert.deepEqual(tracked.deleted.sort(), ['gone', 'unstaged-rm']);
    const all = await inspectRepo(r.root, { includeUntracked: true, mode: 'shallow' });
    assert.deepEqual(all.changed, ['edited', 'run', 'staged-new', 'swapped', 'unstaged-rm', 'untracked']);
    assert.deepEqual(all.deleted, ['gone']);
  });

  test('a detached HEAD has no branch', async () => {
    const r = repo().write('a', '1');
    const first = r.commit();
    r.write('a', '2').commit();
    r.git('checkout', '-q', first);
    const snapshot = await inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' });
    assert.equal(snapshot.branch, null);
    assert.equal(snapshot.head, first);
  });

  test('not a repo, a missing path and a repo without commits are refused with their codes', async () => {
    const plain = mkdtempSync(join(tmpdir(), 'banger-plain-'));
    try {
      await assert.rejects(inspectRepo(plain, { includeUntracked: false, mode: 'shallow' }), code('ERR_NOT_A_GIT_REPO', /not inside a git repository/));
      await assert.rejects(inspectRepo(join(plain, 'nope'), { includeUntracked: false, mode: 'shallow' }), code('ERR_NOT_A_GIT_REPO', /not a directory/));
    } finally {
      rmSync(plain, { recursive: true, force: true });
    }
    await assert.rejects(inspectRepo(repo().root, { includeUntracked: false, mode: 'shallow' }), code('ERR_REPO_NO_COMMITS'));
  });

  test('index entries that escape the tree or reach into .git are refused', async () => {
    for (const bad of ['../evil', 'sub/.git/config', '.GIT/hooks/pre-commit']) {
      const r = repo().write('a', 'a\n');
      r.commit();
      r.craftIndex(['a', bad], 'HEAD:a');
      assert.ok(r.lsFiles().includes(bad), `git lists the crafted entry ${bad}`);
      await assert.rejects(
        inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' }),
        code('ERR_REPO_UNSAFE_PATH', new RegExp(bad.replaceAll('.', '\\.'))),
      );
    }
  });

  test('a path through a symlinked directory is refused (it would ship a file from outside the repo)', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'banger-outside-'));
    try {
      const r = repo().write('dir/secret', 'tracked\n');
      r.commit();
      // Replace the tracked directory by a symlink to a directory outside the repo holding the same name.
      rmSync(join(r.root, 'dir'), { recursive: true });
      writeFileSync(join(outside, 'secret'), 'host secret\n');
      symlinkSync(outside, join(r.root, 'dir'));
      await assert.rejects(inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' }), code('ERR_REPO_UNSAFE_PATH', /parent dir is a symlink/));
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  test('submodules: refused in shallow mode (naming the flag), listed with their files and .git link in full_copy', async () => {
    const sub = repo().write('lib.c', 'lib\n');
    sub.commit();
    const r = repo().write('main.c', 'main\n');
    r.commit();
    r.git('-c', 'protocol.file.allow=always', 'submodule', '--quiet', 'add', sub.root, 'vendor/lib');
    r.commit('add submodule');
    await assert.rejects(
      inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' }),
      code('ERR_SUBMODULES_NEED_FULL_COPY', /vendor\/lib.*--mode full_copy/),
    );
    const full = await inspectRepo(r.root, { includeUntracked: false, mode: 'full_copy' });
    assert.deepEqual(full.submodules, ['vendor/lib']);
    assert.deepEqual(full.files, ['.gitmodules', 'main.c', 'vendor/lib/.git', 'vendor/lib/lib.c']);
  });

  test('a linked worktree is recognised (its git dir is not <root>/.git)', async () => {
    const r = repo().write('a', '1');
    r.commit();
    const tree = join(tmpdir(), `banger-wt-${process.pid}`);
    r.git('worktree', 'add', '-q', '-b', 'side', tree);
    try {
      const snapshot = await inspectRepo(tree, { includeUntracked: false, mode: 'shallow' });
      assert.equal(snapshot.standardGitDir, false);
      assert.equal(snapshot.branch, 'side');
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });

  test('commits and branch names are checked on the host', async () => {
    const r = repo().write('a', '1');
    const head = r.commit();
    r.git('tag', 'v1');
    assert.equal(await resolveCommit(r.root, 'v1'), head);
    assert.equal(await resolveCommit(r.root, 'HEAD'), head);
    await assert.rejects(resolveCommit(r.root, 'no-such-ref'), code('ERR_UNKNOWN_COMMIT'));
    await assert.rejects(resolveCommit(r.root, '--output=/tmp/x'), code('ERR_UNKNOWN_COMMIT'));
    await validateBranchName(r.root, 'feature/x');
    for (const bad of ['-b', 'a..b', 'has space', 'end.lock']) await assert.rejects(validateBranchName(r.root, bad), code('ERR_INVALID_ARGUMENT'));
  });
});
