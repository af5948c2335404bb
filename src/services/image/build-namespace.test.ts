import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { namespaceArgv, resolveBuildHost, runInBuildNamespace } from './build-namespace.js';

/**
 * Host checks before a build, and the build namespace itself (as root, the
 * way CI runs; the rootless namespace is exercised by
 * test/integration/image-rootless.test.ts).
 */

const root = mkdtempSync(join(tmpdir(), 'banger-ns-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function subids(text: string): { subuid: string; subgid: string } {
  const dir = mkdtempSync(join(root, 'etc-'));
  writeFileSync(join(dir, 'subuid'), text);
  writeFileSync(join(dir, 'subgid'), text);
  return { subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
}

const everyTool = (name: string): string => `/usr/bin/${name}`;

test('a missing tool is ERR_HOST_TOOL_MISSING naming the package to install', () => {
  assert.throws(
    () => resolveBuildHost({ uid: 0, findTool: (name) => (name === 'mmdebstrap' || name === 'debugfs' ? undefined : everyTool(name)) }),
    (e: unknown) =>
      e instanceof BangerError &&
      e.code === 'ERR_HOST_TOOL_MISSING' &&
      e.message.includes('mmdebstrap, debugfs') &&
      e.hint === 'sudo apt-get install mmdebstrap e2fsprogs',
  );
});

test('rootless, newuidmap/newgidmap (uidmap) and subordinate ids are required; as root, neither', () => {
  const noUidmap = (name: string): string | undefined => (name.startsWith('new') ? undefined : everyTool(name));
  assert.throws(
    () => resolveBuildHost({ uid: 1000, user: 'alice', findTool: noUidmap, subids: subids('alice:100000:65536\n') }),
    (e: unknown) =>
      e instanceof BangerError && e.code === 'ERR_HOST_TOOL_MISSING' && e.message.includes('newuidmap, newgidmap') && e.hint === 'sudo apt-get install uidmap',
  );
  assert.throws(
    () => resolveBuildHost({ uid: 1000, user: 'alice', findTool: everyTool, subids: subids('bob:100000:65536\n') }),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_SUBUID_MISSING' && (e.hint ?? '').includes('--add-subuids 165536-231071'),
  );
  const rootless = resolveBuildHost({ uid: 1000, user: 'alice', findTool: everyTool, subids: subids('alice:100000:65536\n') });
  assert.equal(rootless.rootless, true);
  assert.equal(rootless.tools.mkfsExt4, '/usr/bin/mkfs.ext4');
  assert.deepEqual(namespaceArgv(rootless).slice(1, 3), ['--map-auto', '--map-root-user']);

  const asRoot = resolveBuildHost({ uid: 0, findTool: noUidmap, subids: subids('') });
  assert.equal(asRoot.rootless, false);
  assert.ok(!namespaceArgv(asRoot).includes('--map-auto'));
});

test('the script runs in a private tmpfs with its arguments; the host sees an empty mount point, removed afterwards', async () => {
  const scratchParent = mkdtempSync(join(root, 'scratch-'));
  const host = resolveBuildHost({ scratchParent });
  const lines: string[] = [];
  let hostView: string[] | undefined;
  await runInBuildNamespace(
    host,
    ['echo "fs=$(stat -f -c %T "$scratch") args=$*"', 'echo secret > "$scratch/inside"', 'echo written', 'sleep 1', 'cat "$scratch/inside"'].join('\n'),
    ['one', 'two words'],
    {
      what: 'test script',
      signal: new AbortController().signal,
      onLine: (line) => {
        lines.push(line);
        if (line === 'written') hostView = readdirSync(join(scratchParent, readdirSync(scratchParent)[0] ?? ''));
      },
    },
  );
  assert.deepEqual(lines, ['fs=tmpfs args=one two words', 'written', 'secret']);
  assert.deepEqual(hostView, [], 'the tmpfs is visible only inside the namespace');
  assert.deepEqual(readdirSync(scratchParent), []);
});

test('a failing script is ERR_HOST_COMMAND_FAILED naming what failed, with its output', async () => {
  const host = resolveBuildHost({ scratchParent: mkdtempSync(join(root, 'scratch-')) });
  await assert.rejects(
    runInBuildNamespace(host, 'echo "E: no network" >&2\nexit 3', [], { what: 'mmdebstrap', signal: new AbortController().signal }),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_HOST_COMMAND_FAILED' && /^mmdebstrap failed \(exit 3\): .*E: no network/.test(e.message),
  );
});

/** Pids of live processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
      } catch {
        return false;
      }
    })
    .map(Number);
}

test('cancelling kills every process in the namespace, even ones that ignore SIGTERM', async () => {
  const scratchParent = mkdtempSync(join(root, 'scratch-'));
  const host = resolveBuildHost({ scratchParent });
  // A distinct sleep length marks this test's processes in /proc.
  const marker = `3001.${randomInt(1_000_000, 9_999_999)}`;
  const controller = new AbortController();
  const pending = runInBuildNamespace(
    host,
    [`(trap '' TERM; sleep ${marker}) &`, `sh -c 'trap "" TERM; sleep ${marker}' &`, 'echo started', 'wait'].join('\n'),
    [],
    {
      what: 'test script',
      signal: controller.signal,
      onLine: (line) => {
        if (line === 'started') controller.abort(new BangerError('ERR_CANCELLED', 'client disconnected'));
      },
    },
  );
  try {
    await assert.rejects(pending, /client disconnected/);
    const deadline = Date.now() + 10_000;
    while (processesWith(marker).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(processesWith(marker), [], 'nothing of the build survives the cancel');
    assert.deepEqual(readdirSync(scratchParent), []);
  } finally {
    // Should the kill ever regress, fail instead of hanging on the survivors' open pipes.
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
});
