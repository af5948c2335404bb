import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import type { ImageInfo } from '../../src/rpc/methods.js';
import { MISE_RELEASE } from '../../src/services/image/catalog.js';
import { TestRepo } from '../helpers/git-repo.js';
import { BangerWorld, vmWorldOptions, userModeLabel } from '../integration/harness.js';

/**
 * The catalog's dev image on real QEMU: built by the first `vm run` that
 * names it (Debian's build-essential, python3, nodejs, docker.io, and mise
 * from npm), then booted twice: once with a repo as the workspace, once for
 * the tools. The first build on a machine downloads several hundred MB of
 * .debs (kept in the shared cache after), hence the generous timeouts.
 */
describe(`the debian-bookworm-dev image on real QEMU${userModeLabel()}`, { timeout: 60 * 60_000 }, () => {
  let world: BangerWorld;
  let repo: TestRepo;
  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
    repo = new TestRepo();
    repo.write('README.md', 'dev image\n').commit();
  });
  after(() => {
    world.close();
    repo.remove();
  });

  test('vm run --image debian-bookworm-dev <repo> builds the image with mise, and mise exec runs Debian’s node in the workspace', async (t) => {
    const started = Date.now();
    const result = await world.run(['vm', 'run', '--rm', '--image', 'debian-bookworm-dev', repo.root, '--', 'mise', 'exec', '--', 'node', '--version'], {
      timeoutMs: 55 * 60_000,
    });
    t.diagnostic(`pull + build + boot + command: ${Math.round((Date.now() - started) / 1000)} s`);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^v18\.\d+\.\d+$/m, "mise with no config falls back to the node on PATH, Debian's 18");
    assert.match(result.stderr, /image debian-bookworm-dev is not here yet: pulling it from the catalog/);
    assert.ok(result.stderr.includes(`• fetching mise ${MISE_RELEASE.version} from npm`), result.stderr);
    const { images } = await world.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(
      images.map((i) => i.name),
      ['debian-bookworm-dev'],
    );
  });

  test('the image has gcc, python3, docker and the pinned mise, root-owned 0755 at /usr/local/bin/mise', async () => {
    const script = [
      'set -e',
      'gcc --version | head -n 1',
      'python3 --version',
      'docker --version',
      'mise --version',
      'command -v mise',
      "stat -c '%U %G %a' /usr/local/bin/mise",
    ].join('\n');
    const result = await world.run(['vm', 'run', '--rm', '--image', 'debian-bookworm-dev', '--', 'sh', '-c', script], { timeoutMs: 15 * 60_000 });
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^gcc \(Debian 12\.\S+\) 12\./);
    assert.match(lines[1] ?? '', /^Python 3\.11\.\d+$/);
    assert.match(lines[2] ?? '', /^Docker version 20\.10\.\d+/);
    assert.match(lines[3] ?? '', new RegExp(`^${MISE_RELEASE.version.replaceAll('.', '\\.')} linux-x64 `));
    assert.deepEqual(lines.slice(4), ['/usr/local/bin/mise', 'root root 755']);
  });
});
