import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';

import { git, TestRepo } from '../../test/helpers/git-repo.js';
import { gitMetadata } from './git-metadata.js';
import { SHALLOW_FETCH_DEPTH } from './modes.js';
import { inspectRepo } from './repo.js';

const repos: TestRepo[] = [];
after(() => {
  for (const r of repos) r.remove();
});

test(
  'shallow metadata: the last commits of HEAD (and of --from), a valid shallow repo on the same branch, nothing of the host config',
  { timeout: 60_000 },
  async () => {
    const r = new TestRepo();
    repos.push(r);
    r.git('config', 'remote.origin.url', 'https://token:secret@example.com/repo.git');
    const commits: string[] = [];
    for (let i = 0; i < SHALLOW_FETCH_DEPTH + 5; i++) commits.push(r.write('counter', `${i}\n`).write(`file-${i}`, `${i}\n`).commit(`commit ${i}`));
    const old = commits[2] ?? '';
    const snapshot = await inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' });
    const metadata = await gitMetadata(snapshot, 'shallow', [old]);
    try {
      const first = metadata.entries[0];
      assert.ok(first !== undefined && 'source' in first && first.name === '.git');
      const gitDir = first.source;
      const repo = dirname(gitDir);
      assert.equal(git(repo, 'fsck', '--no-dangling').trim(), '', 'a consistent repo');
      assert.equal(git(repo, 'symbolic-ref', 'HEAD').trim(), 'refs/heads/main');
      assert.equal(git(repo, 'rev-parse', 'HEAD').trim(), snapshot.head);
      assert.equal(git(repo, 'rev-list', '--count', 'HEAD').trim(), String(SHALLOW_FETCH_DEPTH), 'history cut at the depth');
      assert.equal(git(repo, 'cat-file', '-t', old).trim(), 'commit', '--from is in the repo');
      assert.ok(git(repo, 'ls-tree', '-r', '--name-only', old).includes('file-2'), 'with its tree');
      const shallow = readFileSync(join(gitDir, 'shallow'), 'utf8').trim().split('\n').sort();
      assert.deepEqual(shallow, [commits[5]], 'the boundary commit is recorded as shallow (--from reaches the root)');
      assert.doesNotMatch(readFileSync(join(gitDir, 'config'), 'utf8'), /secret|remote/, 'no remotes or credentials from the host');
      assert.equal(existsSync(join(gitDir, 'FETCH_HEAD')), false);
    } finally {
      metadata.dispose();
    }
  },
);

test('the working tree id is what `git add -A` gives for the files the guest will have', { timeout: 60_000 }, async () => {
  const r = new TestRepo();
  repos.push(r);
  r.write('a', 'a\n').write('b', 'b\n').write('run', '#!/bin/sh\n', 0o755).symlink('link', 'a');
  r.commit();
  const clean = await gitMetadata(await inspectRepo(r.root, { includeUntracked: false, mode: 'shallow' }), 'shallow', []);
  clean.dispose();
  assert.equal(clean.workingTree, r.git('rev-parse', 'HEAD^{tree}').trim(), 'unchanged: HEAD’s tree');

  r.write('a', 'edited\n').write('new', 'new\n').write('untracked', 'u\n');
  r.git('add', 'new');
  rmSync(join(r.root, 'b'));
  chmodSync(join(r.root, 'run'), 0o644);
  const changed = await gitMetadata(await inspectRepo(r.root, { includeUntracked: true, mode: 'shallow' }), 'shallow', []);
  changed.dispose();
  const index = join(r.root, '.git', 'expected-index');
  const expected = execFileSync('sh', ['-c', 'cp .git/index "$I" && GIT_INDEX_FILE="$I" git add -A && GIT_INDEX_FILE="$I" git write-tree'], {
    cwd: r.root,
    env: { ...process.env, I: index },
    encoding: 'utf8',
  }).trim();
  assert.equal(changed.workingTree, expected);
});
