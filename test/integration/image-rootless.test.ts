import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DEFAULT_KERNEL_MIRROR } from '../../src/config/schema.js';
import { APT_CACHE_DIR } from '../../src/config/filenames.js';
import { MASKED_UNITS } from '../../src/services/image/rootfs-builder.js';
import { asUser, ensureTestUser, type TestUser } from '../helpers/test-user.js';
import { collect, REPO_ROOT, SHARED_CACHE, waitFor } from './harness.js';
import { ProcSampler, stillRunning, type SampledProcess } from './proc-sampler.js';

/**
 * The catalog image build as an ordinary user: the real builder
 * (build-image-as-user.ts: resolveBuildHost, buildDebianRoot, packExt4, as
 * the daemon runs them) started with setpriv as the test user `banger-test`,
 * which has subordinate ids and no privileges. The tests run as root (CI) to
 * create that user.
 *
 * While the build runs, a sampler walks the spawned process's descendants in
 * /proc every 50 ms (see proc-sampler.ts) and records any with real or
 * effective uid 0: none is allowed but newuidmap/newgidmap, the setuid
 * helpers (Debian's uidmap) that write the user namespace's id mapping.
 */

const BUILD_ENTRY = join(REPO_ROOT, 'dist', 'test', 'integration', 'build-image-as-user.js');
const SHARED_APT_CACHE = join(SHARED_CACHE, 'banger', APT_CACHE_DIR);
/** The only programs a rootless build may run as root. */
const SETUID_HELPERS = new Set(['newuidmap', 'newgidmap']);
const BUILD_TIMEOUT_MS = 15 * 60_000;

interface BuildWorld {
  dir: string;
  cache: string;
  tmp: string;
  out: string;
}

describe('image builds as an ordinary user', { timeout: 2 * BUILD_TIMEOUT_MS }, () => {
  let user: TestUser;
  let root: string;
  before(() => {
    user = ensureTestUser();
    root = mkdtempSync(join(tmpdir(), 'banger-rootless-'));
    // World-searchable: apt's _apt sandbox user must reach the build's scratch dir below it.
    chmodSync(root, 0o755);
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  /** Dirs the test user owns: an apt cache seeded from the shared (root-owned) one, TMPDIR, output. */
  function world(name: string): BuildWorld {
    const dir = join(root, name);
    const w = { dir, cache: join(dir, 'apt-archives'), tmp: join(dir, 'tmp'), out: join(dir, 'out') };
    for (const d of [w.dir, w.cache, w.tmp, w.out]) {
      mkdirSync(d, { mode: 0o755 });
      chownSync(d, user.uid, user.gid);
    }
    if (existsSync(SHARED_APT_CACHE)) {
      for (const deb of readdirSync(SHARED_APT_CACHE).filter((f) => f.endsWith('.deb'))) {
        copyFileSync(join(SHARED_APT_CACHE, deb), join(w.cache, deb));
        chownSync(join(w.cache, deb), user.uid, user.gid);
      }
    }
    return w;
  }

  /** Copies packages this build downloaded into the shared cache, for later builds (apt verifies them on use). */
  function shareDownloads(w: BuildWorld): void {
    mkdirSync(SHARED_APT_CACHE, { recursive: true, mode: 0o700 });
    const have = new Set(readdirSync(SHARED_APT_CACHE));
    for (const deb of readdirSync(w.cache).filter((f) => f.endsWith('.deb') && !have.has(f))) copyFileSync(join(w.cache, deb), join(SHARED_APT_CACHE, deb));
  }

  function startBuild(w: BuildWorld): { child: ChildProcess; sampler: ProcSampler } {
    const [command = 'setpriv', ...prefix] = asUser(user);
    const child = spawn(command, [...prefix, process.execPath, BUILD_ENTRY, DEFAULT_KERNEL_MIRROR, w.cache, w.out], {
      env: { ...process.env, HOME: user.home, USER: user.name, LOGNAME: user.name, TMPDIR: w.tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.ok(child.pid !== undefined);
    return { child, sampler: new ProcSampler(child.pid) };
  }

  /** Files under `dir` owned by anyone but the test user and root (a subordinate id left on disk could not be removed). */
  function foreignOwners(dir: string): string[] {
    const foreign: string[] = [];
    const walk = (path: string): void => {
      const stat = lstatSync(path);
      if (stat.uid !== user.uid && stat.uid !== 0) foreign.push(`${path} (uid ${stat.uid})`);
      if (stat.isDirectory()) for (const entry of readdirSync(path)) walk(join(path, entry));
    };
    walk(dir);
    return foreign;
  }

  function describeProcesses(processes: Iterable<SampledProcess>): string {
    return [...processes].map((p) => `${p.pid} ${p.name} uid=${p.realUid}/${p.effectiveUid}: ${p.cmdline.slice(0, 200)}`).join('\n');
  }

  test('builds the catalog image with real owners in the ext4, and nothing of it runs as root', { timeout: BUILD_TIMEOUT_MS }, async (t) => {
    const w = world('build');
    const { child, sampler } = startBuild(w);
    let result;
    try {
      result = await collect(child, BUILD_TIMEOUT_MS);
    } finally {
      sampler.stop();
    }
    assert.equal(result.code, 0, `the build failed\nstdout: ${result.stdout}\nstderr: ${result.stderr.slice(-3000)}`);
    shareDownloads(w);
    const summary = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean; sizeBytes: number; bootstrapMs: number; packMs: number };
    t.diagnostic(`build as ${user.name}: bootstrap ${summary.bootstrapMs} ms, pack ${summary.packMs} ms, image ${summary.sizeBytes} bytes`);
    t.diagnostic(`${sampler.samples} samples; ran: ${[...sampler.names].sort().join(', ')}`);

    // Root, except the setuid helpers, never: checked on every sample of every process in the build.
    const asRoot = [...sampler.rootSightings.values()];
    assert.deepEqual(
      asRoot.filter((p) => !SETUID_HELPERS.has(p.name)),
      [],
      `processes of the build ran as root:\n${describeProcesses(asRoot)}`,
    );
    // The sampler saw the build itself (the long-running steps), so the check above is not vacuous.
    for (const name of ['mmdebstrap', 'apt-get', 'dpkg', 'tar', 'mkfs.ext4']) assert.ok(sampler.names.has(name), `${name} was never sampled`);
    assert.ok(
      [...sampler.seen.values()].some((p) => p.realUid >= 100_000),
      'some processes ran under a subordinate uid (root inside the image: the user namespace at work)',
    );

    const image = join(w.out, 'rootfs.ext4');
    const debugfs = (request: string): string => execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(debugfs('stat /etc/shadow'), /Type: regular\s+Mode:\s+0640[\s\S]*User:\s+0\s+Group:\s+42\s/, '/etc/shadow is root:shadow 0640');
    assert.match(debugfs('stat /usr/bin/passwd'), /Mode:\s+04755[\s\S]*User:\s+0\s+Group:\s+0\s/, 'passwd keeps its setuid bit');
    assert.match(debugfs('stat /root'), /Type: directory\s+Mode:\s+0700[\s\S]*User:\s+0\s+Group:\s+0\s/);
    assert.match(debugfs('stat /var/lib/apt/lists/partial'), /User:\s+42\s/, 'owned by _apt: apt downloaded in its sandbox');
    assert.match(debugfs('ea_list /var/log/journal'), /system\.posix_acl_access/, "systemd's ACL on the journal survives");
    assert.match(debugfs('stat /dev/null'), /Type: character special\s+Mode:\s+0666[\s\S]*Device major\/minor number: 01:03/);
    assert.doesNotMatch(debugfs('ls /etc/ssh'), /ssh_host_/);
    assert.equal(debugfs('cat /etc/hostname'), 'banger\n');
    assert.equal(debugfs('cat /etc/machine-id'), '');
    for (const unit of MASKED_UNITS) assert.match(debugfs(`stat /etc/systemd/system/${unit}`), /Fast link dest: "\/dev\/null"/, unit);
    execFileSync('e2fsck', ['-fn', image], { stdio: 'ignore' });

    assert.deepEqual(readdirSync(w.tmp), [], 'no scratch dir is left');
    assert.deepEqual(foreignOwners(w.dir), [], 'nothing on disk belongs to a subordinate id');
  });

  test('cancelling a rootless build mid-install stops all of it and leaves nothing foreign behind', { timeout: BUILD_TIMEOUT_MS }, async () => {
    const w = world('cancel');
    const { child, sampler } = startBuild(w);
    const exited = collect(child, BUILD_TIMEOUT_MS);
    let result;
    try {
      await waitFor('dpkg to run in the build', () => sampler.names.has('dpkg') || child.exitCode !== null, BUILD_TIMEOUT_MS);
      assert.equal(child.exitCode, null, 'the build ended before it installed anything');
      child.kill('SIGTERM'); // the entry aborts its OpContext signal, as a client disconnect does
      result = await exited;
    } finally {
      sampler.stop();
    }
    assert.equal(result.code, 2, result.stderr.slice(-3000));
    assert.match(result.stdout, /"ok":false,"code":"ERR_CANCELLED"/);
    // The entry exits only once its child's pipes close, i.e. once every process holding them is gone;
    // check anyway that nothing the sampler saw survives.
    await waitFor('every process of the build to end', () => ![...sampler.seen.values()].some(stillRunning), 30_000);
    assert.deepEqual(readdirSync(w.tmp), [], 'no scratch dir is left');
    assert.deepEqual(foreignOwners(w.dir), [], 'nothing on disk belongs to a subordinate id');
    assert.equal(existsSync(join(w.out, 'rootfs.ext4')), false);
  });
});
