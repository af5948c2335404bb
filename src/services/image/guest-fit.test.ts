import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { guestFitEntries, parsePasswd, resolveImageUser } from './guest-fit.js';
import { type ExtraEntry, MergedTree } from './layer-merge.js';

/** What banger adds to registry images so they boot and let root in, on trees shaped like real images. */

const root = mkdtempSync(join(tmpdir(), 'banger-fit-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let count = 0;

async function treeOf(files: Record<string, string | { symlink: string }>): Promise<MergedTree> {
  const dir = join(root, `tree-${count++}`);
  mkdirSync(dir);
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(join(full, '..'), { recursive: true });
    if (typeof content === 'string') writeFileSync(full, content);
    else symlinkSync(content.symlink, full);
  }
  const tar = join(root, `layer-${count++}.tar`);
  execFileSync('tar', ['-C', dir, '--numeric-owner', '-cf', tar, '.']);
  return MergedTree.build([tar]);
}

const bundle = [{ path: '/banger/ssh/lib/libc.so.6', content: Buffer.from('libc'), mode: 0o644 }];
const file = (extras: ExtraEntry[], path: string): string | undefined => {
  const entry = extras.find((e) => e.path === path);
  return entry?.type === 'file' ? entry.content.toString() : undefined;
};

test('a busybox rootfs without accounts gets root, its group, the mount points and the bundle', async () => {
  const extras = await guestFitEntries(await treeOf({ 'bin/busybox': 'BB', 'bin/sh': { symlink: 'busybox' } }), bundle);
  assert.equal(file(extras, '/etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  assert.equal(file(extras, '/etc/group'), 'root:x:0:\n');
  assert.equal(file(extras, '/etc/shells'), undefined, '/bin/sh is in the default list');
  const dirs = extras.filter((e) => e.type === 'directory').map((e) => e.path);
  for (const dir of ['/dev', '/proc', '/sys', '/run', '/tmp', '/root', '/banger', '/banger/ssh', '/banger/ssh/lib']) assert.ok(dirs.includes(dir), dir);
  assert.ok(dirs.indexOf('/banger/ssh') < dirs.indexOf('/banger/ssh/lib'), 'parents first');
  assert.equal(file(extras, '/banger/ssh/lib/libc.so.6'), 'libc');
});

test("a Debian-like image keeps root's bash, listed in /etc/shells already; nothing of it is rewritten", async () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';
  const extras = await guestFitEntries(
    await treeOf({
      'usr/bin/bash': 'bash',
      bin: { symlink: 'usr/bin' },
      'usr/bin/sh': { symlink: 'bash' },
      'etc/passwd': passwd,
      'etc/group': 'root:x:0:\n',
      'etc/shells': '/bin/sh\n/bin/bash\n',
      'tmp/x': '',
    }),
    bundle,
  );
  assert.equal(file(extras, '/etc/passwd'), undefined);
  assert.equal(file(extras, '/etc/shells'), undefined);
  assert.equal(file(extras, '/etc/group'), undefined);
  assert.ok(!extras.some((e) => e.path === '/tmp'), 'an existing mount point is left alone');
});

test("root's shell is made /bin/sh when it is missing or refuses logins; an unlisted shell is added to /etc/shells", async () => {
  const nologin = await guestFitEntries(
    await treeOf({ 'bin/sh': 'sh', 'etc/passwd': 'root:x:0:0:root:/home/root:/sbin/nologin\nnode:x:1000:1000::/home/node:/bin/sh\n' }),
    bundle,
  );
  assert.equal(file(nologin, '/etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n');
  const ash = await guestFitEntries(
    await treeOf({ 'bin/sh': 'sh', 'bin/ash': 'ash', 'etc/passwd': 'root:x:0:0:root:/root:/bin/ash\n', 'etc/shells': '/bin/sh' }),
    bundle,
  );
  assert.equal(file(ash, '/etc/shells'), '/bin/sh\n/bin/ash\n');
  assert.equal(file(ash, '/etc/passwd'), undefined);
  const missingRoot = await guestFitEntries(await treeOf({ 'bin/sh': 'sh', 'etc/passwd': 'app:x:10:10::/app:/bin/sh\n' }), bundle);
  assert.equal(file(missingRoot, '/etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:10:10::/app:/bin/sh\n');
});

test('an image without /bin/sh is refused, naming what is missing', async () => {
  await assert.rejects(guestFitEntries(await treeOf({ 'app/server': 'x', 'etc/passwd': 'root:x:0:0:root:/root:/sbin/nologin\n' }), bundle), {
    code: 'ERR_IMAGE_INVALID',
    message: /no \/bin\/sh/,
  });
  await assert.rejects(guestFitEntries(await treeOf({ 'bin/sh': { symlink: '/nonexistent' } }), bundle), { code: 'ERR_IMAGE_INVALID' });
});

test("the image's User becomes a login name: numeric ids through /etc/passwd, root and empty mean none", async () => {
  const tree = await treeOf({ 'bin/sh': 'sh', 'etc/passwd': 'root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' });
  assert.equal(await resolveImageUser(tree, '1000'), 'node');
  assert.equal(await resolveImageUser(tree, '1000:1000'), 'node');
  assert.equal(await resolveImageUser(tree, 'node:staff'), 'node');
  assert.equal(await resolveImageUser(tree, 'ghost'), 'ghost', 'kept as given (su says what is wrong)');
  assert.equal(await resolveImageUser(tree, '0'), undefined);
  assert.equal(await resolveImageUser(tree, 'root'), undefined);
  assert.equal(await resolveImageUser(tree, ''), undefined);
  assert.deepEqual(parsePasswd('# comment\nbad line\nu:x:5:6:g:/h:/bin/sh\n'), [{ name: 'u', uid: 5, gid: 6, home: '/h', shell: '/bin/sh' }]);
});
