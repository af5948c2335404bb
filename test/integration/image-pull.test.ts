import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { ImageInfo } from '../../src/rpc/methods.js';
import { entryHeader } from '../../src/workspace/tar-writer.js';
import { buildOciLayout, fixtureImageTrees, TestRegistry } from '../helpers/oci-registry.js';
import { BangerWorld, type CliResult } from './harness.js';

/**
 * `banger image pull <ref>` against a real registry on loopback (Debian's
 * docker-registry, images pushed by skopeo from layouts built here): what
 * lands in the ext4 (read back with debugfs, no VM), the cache and
 * up-to-date paths, multi-platform indexes, basic auth from docker's
 * config.json, every refusal leaving nothing behind, and concurrent pulls.
 * The guest side (booting a pulled image) is test/e2e/registry-image.test.ts.
 */

interface Ext4Stat {
  mode: number;
  uid: number;
  gid: number;
  inode: number;
}

/** `debugfs stat` of a path in an ext4 image; undefined when it does not exist. */
function ext4Stat(image: string, path: string): Ext4Stat | undefined {
  const out = spawnSync('debugfs', ['-R', `stat "${path}"`, image], { encoding: 'utf8' }).stdout;
  const inode = /Inode:\s+(\d+)/.exec(out);
  const mode = /Mode:\s+0?([0-7]+)/.exec(out);
  const owner = /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(out);
  if (inode === null || mode === null || owner === null) return undefined;
  return { inode: Number(inode[1]), mode: parseInt(mode[1] ?? '0', 8), uid: Number(owner[1]), gid: Number(owner[2]) };
}

function ext4Cat(image: string, path: string): string {
  return spawnSync('debugfs', ['-R', `cat "${path}"`, image], { encoding: 'utf8' }).stdout;
}

/** The progress stages (and details) a `--json` run printed on stderr. */
function progressOf(result: CliResult): { stage: string; detail: string }[] {
  return result.stderr
    .split('\n')
    .filter((line) => line.startsWith('{"progress"'))
    .map((line) => (JSON.parse(line) as { progress: { stage: string; detail: string } }).progress);
}

/** A raw one-layer tarball of the given entries (names as given: nothing checks them here). */
function rawTar(entries: { name: string; content: string }[]): Buffer {
  const chunks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.content);
    chunks.push(
      entryHeader({ name: entry.name, mode: 0o644, mtime: 0, kind: { type: 'file', size: data.length } }),
      data,
      Buffer.alloc((512 - (data.length % 512)) % 512),
    );
  }
  chunks.push(Buffer.alloc(1024));
  return Buffer.concat(chunks);
}

describe('image pull from a registry', { timeout: 15 * 60_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'banger-pull-it-'));
  let registry: TestRegistry;
  let world: BangerWorld;
  let trees: { base: string; top: string };

  before(async () => {
    registry = await TestRegistry.start();
    world = await BangerWorld.create({ sharedDownloads: true });
    trees = fixtureImageTrees(join(root, 'trees'));
    // The kernel registry images boot with: pulled once, so the cases below measure only image work.
    const kernel = await world.run(['kernel', 'pull', 'debian-bookworm-cloud'], { timeoutMs: 600_000 });
    assert.equal(kernel.code, 0, kernel.stderr);
  });
  after(() => {
    world.close();
    registry.close();
    rmSync(root, { recursive: true, force: true });
  });

  const images = async (): Promise<ImageInfo[]> => (await world.json<{ images: ImageInfo[] }>(['image', 'list'])).images;

  /** Every blob the cache holds is complete: its bytes hash to its name (partial transfers live elsewhere). */
  const assertBlobCacheWhole = (): void => {
    const blobs = join(world.layout.cacheDir, 'oci', 'blobs', 'sha256');
    for (const name of readdirSync(blobs)) {
      assert.equal(
        createHash('sha256')
          .update(readFileSync(join(blobs, name)))
          .digest('hex'),
        name,
        `cached blob ${name} is whole`,
      );
    }
  };

  /** Nothing half-done in the images dir: no staging dirs, a dir per image row and nothing else. */
  const assertImagesDirClean = async (): Promise<void> => {
    const rows = (await images()).map((i) => i.id).sort();
    const dirs = existsSync(world.layout.imagesDir) ? readdirSync(world.layout.imagesDir).sort() : [];
    assert.deepEqual(dirs, rows, 'images/ holds exactly the recorded images');
  };

  test('a multi-layer image: owners, modes, setuid, whiteout, opaque dir and hard link are as the layers say; banger adds its SSH server', async () => {
    const layout = join(root, 'fixture');
    const pushed = buildOciLayout(layout, 'v1', [trees.base, trees.top], {
      config: { Env: ['PATH=/usr/bin:/bin', 'GREETING=hello'], WorkingDir: '/srv', User: 'dev' },
    });
    registry.push(layout, 'v1', 'team/fixture');
    const result = await world.run(['image', 'pull', `${registry.host}/team/fixture:v1`, '--json'], { timeoutMs: 300_000 });
    assert.equal(result.code, 0, result.stderr);
    const { image, pulled } = JSON.parse(result.stdout) as { image: ImageInfo; pulled: boolean };
    assert.equal(pulled, true);
    assert.equal(image.name, 'fixture-v1');
    assert.equal(image.source, 'registry');
    assert.equal(image.ref, `${registry.host}/team/fixture:v1`);
    assert.equal(image.digest, pushed.digest);
    assert.equal(image.kernel.name, 'debian-bookworm-cloud');
    const stages = new Set(progressOf(result).map((p) => p.stage));
    for (const stage of ['manifest', 'layers', 'flatten', 'pack']) assert.ok(stages.has(stage), `progress stage ${stage}`);

    const rootfs = image.rootfs;
    const setuid = ext4Stat(rootfs, '/usr/bin/setuid-tool');
    assert.deepEqual([setuid?.mode, setuid?.uid, setuid?.gid], [0o4755, 0, 0], 'setuid root stays setuid root');
    const notes = ext4Stat(rootfs, '/home/dev/notes');
    assert.ok(notes !== undefined, '/home/dev/notes exists');
    assert.deepEqual([notes.uid, notes.gid, notes.mode & 0o7777], [1000, 1000, 0o600], 'uid 1000 stays 1000');
    assert.equal(ext4Stat(rootfs, '/home/dev')?.uid, 1000);
    assert.equal(ext4Stat(rootfs, '/etc/gone'), undefined, 'the whited-out file is gone');
    assert.equal(ext4Stat(rootfs, '/opt/old/lower'), undefined, 'the opaque dir hides the lower layer');
    assert.equal(ext4Cat(rootfs, '/opt/old/upper'), 'from the top layer\n');
    assert.equal(ext4Stat(rootfs, '/srv/data')?.inode, ext4Stat(rootfs, '/srv/data-link')?.inode, 'the hard link is one inode');
    assert.ok(ext4Stat(rootfs, '/banger/ssh/dropbear') !== undefined, "banger's SSH server is in the image");
    assert.ok(ext4Stat(rootfs, '/banger/ssh/lib/libc.so.6') !== undefined);
    assert.ok(ext4Stat(rootfs, '/tmp') !== undefined && ext4Stat(rootfs, '/proc') !== undefined, 'mount points added');
    assert.match(ext4Cat(rootfs, '/etc/passwd'), /^root:x:0:0:root:\/root:\/bin\/sh$/m);

    const listed = (await images()).find((i) => i.name === 'fixture-v1');
    assert.equal(listed?.digest, pushed.digest);
    const table = await world.run(['image', 'list']);
    assert.match(table.stdout, new RegExp(`fixture-v1 .*${registry.host}/team/fixture:v1 +${pushed.digest.slice(0, 19)}`));
    await assertImagesDirClean();
  });

  test('a second pull of an unchanged image fetches only the manifest', async () => {
    const again = await world.run(['image', 'pull', 'fixture-v1', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { pulled: boolean }).pulled, false);
    assert.deepEqual([...new Set(progressOf(again).map((p) => p.stage))], ['manifest']);
    const byRef = await world.run(['image', 'pull', `${registry.host}/team/fixture:v1`]);
    assert.match(byRef.stdout, /fixture-v1 is up to date/);
  });

  test('an image sharing its base downloads only its new layer', async () => {
    const extra = join(root, 'extra');
    mkdirSync(join(extra, 'srv'), { recursive: true });
    writeFileSync(join(extra, 'srv', 'v2'), 'second\n');
    const layout = join(root, 'fixture-v2');
    // The same base and top trees: byte-identical layers (tar and gzip -n of unchanged trees), so the same digests.
    buildOciLayout(layout, 'v2', [trees.base, trees.top, extra]);
    registry.push(layout, 'v2', 'team/fixture');
    const result = await world.run(['image', 'pull', `${registry.host}/team/fixture:v2`, '--json'], { timeoutMs: 300_000 });
    assert.equal(result.code, 0, result.stderr);
    const downloaded = new Set(
      progressOf(result)
        .filter((p) => p.stage === 'layers')
        .map((p) => p.detail),
    );
    assert.deepEqual(
      [...downloaded].map((d) => d.replace(/ \(.*$/, '')),
      ['layer 3/3'],
      'only the new layer was downloaded',
    );
  });

  test('a multi-platform index resolves to its linux/amd64 image', async () => {
    const layout = join(root, 'multi');
    const amd64 = buildOciLayout(layout, 'v1', [trees.base], { platforms: 'index' });
    registry.push(layout, 'v1', 'team/multi');
    const { image } = await world.json<{ image: ImageInfo }>(['image', 'pull', `${registry.host}/team/multi:v1`], { timeoutMs: 300_000 });
    assert.equal(image.digest, amd64.digest);
  });

  test('refusals leave nothing behind: missing tag, no amd64 entry, corrupt blob, a layer escaping its root', async () => {
    const before = await images();
    const armOnly = join(root, 'arm');
    buildOciLayout(armOnly, 'v1', [trees.base], { platforms: 'arm64-only' });
    registry.push(armOnly, 'v1', 'team/arm');
    // Content of its own: a blob already in the (shared) cache would never be fetched again.
    const unique = join(root, 'unique');
    mkdirSync(unique);
    writeFileSync(join(unique, 'random'), randomBytes(4096));
    const corrupt = join(root, 'corrupt');
    const corruptManifest = buildOciLayout(corrupt, 'v1', [trees.base, unique]);
    registry.push(corrupt, 'v1', 'team/corrupt');
    const corruptLayer = (
      JSON.parse(readFileSync(join(corrupt, 'blobs', 'sha256', corruptManifest.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] }
    ).layers[1];
    registry.corruptBlob(corruptLayer?.digest ?? '');
    const evil = join(root, 'evil');
    buildOciLayout(evil, 'v1', [trees.base], { rawLayers: [rawTar([{ name: '../../../tmp/banger-escaped', content: 'pwned' }])] });
    registry.push(evil, 'v1', 'team/evil');
    const shellless = join(root, 'shellless');
    mkdirSync(join(shellless, 'app'), { recursive: true });
    writeFileSync(join(shellless, 'app', 'server'), 'a program, and no shell to run anything else');
    buildOciLayout(join(root, 'distroless'), 'v1', [shellless]);
    registry.push(join(root, 'distroless'), 'v1', 'team/distroless');

    const cases: [string, string, RegExp][] = [
      [`${registry.host}/team/fixture:nope`, 'ERR_NOT_FOUND', /not found/],
      [`${registry.host}/team/arm:v1`, 'ERR_NOT_FOUND', /linux\/arm64/],
      [`${registry.host}/team/corrupt:v1`, 'ERR_VERIFY_FAILED', /sha256/],
      [`${registry.host}/team/evil:v1`, 'ERR_IMAGE_UNSAFE', /"\.\."/],
      [`${registry.host}/team/distroless:v1`, 'ERR_IMAGE_INVALID', /no \/bin\/sh/],
    ];
    for (const [ref, code, message] of cases) {
      const result = await world.run(['image', 'pull', ref], { timeoutMs: 300_000 });
      assert.equal(result.code, 1, `${ref}: ${result.stderr}`);
      assert.match(result.stderr, new RegExp(`error\\[${code}\\]`), ref);
      assert.match(result.stderr, message, ref);
      assert.match(result.stderr, /hint: /, `${ref} has a hint`);
    }
    assert.equal(existsSync('/tmp/banger-escaped'), false);
    assert.deepEqual(
      (await images()).map((i) => i.id),
      before.map((i) => i.id),
      'no image rows were added',
    );
    await assertImagesDirClean();
    assertBlobCacheWhole();
  });

  test('two pulls of one image at once make one image; pulls of different images run side by side', async () => {
    const ref = `${registry.host}/team/multi:v1`;
    const [a, b] = await Promise.all([
      world.run(['image', 'pull', ref, '--name', 'twin', '--json'], { timeoutMs: 300_000 }),
      world.run(['image', 'pull', ref, '--name', 'twin', '--json'], { timeoutMs: 300_000 }),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const ids = [a, b].map((r) => (JSON.parse(r.stdout) as { image: ImageInfo }).image.id);
    assert.equal(ids[0], ids[1], 'both callers got the same image');
    assert.equal((await images()).filter((i) => i.name === 'twin').length, 1);

    // Different names: the second pull's work starts before the first one is done.
    const started = Date.now();
    const firstStage = new Map<string, number>();
    const done = new Map<string, number>();
    const pull = (name: string): Promise<void> =>
      new Promise((resolve, reject) => {
        const child = world.spawn(['image', 'pull', ref, '--name', name, '--json']);
        let stderr = '';
        child.stderr?.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (!firstStage.has(name) && /"stage":"(flatten|pack)"/.test(stderr)) firstStage.set(name, Date.now() - started);
        });
        child.on('close', (code) => {
          done.set(name, Date.now() - started);
          if (code === 0) resolve();
          else reject(new Error(`pull ${name} exited ${code ?? '?'}: ${stderr}`));
        });
      });
    await Promise.all([pull('one'), pull('two')]);
    const [earlier = 'one', later = 'two'] = ['one', 'two'].sort((x, y) => (done.get(x) ?? 0) - (done.get(y) ?? 0));
    assert.ok(
      (firstStage.get(later) ?? Infinity) < (done.get(earlier) ?? 0),
      `the later pull was working before the earlier finished: ${JSON.stringify({ firstStage: [...firstStage], done: [...done] })}`,
    );
    for (const name of ['twin', 'one', 'two']) assert.equal((await world.run(['image', 'delete', name])).code, 0);
    await assertImagesDirClean();
  });

  test('a registry behind basic auth: no login and a wrong password are refused, the docker config login pulls', async () => {
    const secured = await TestRegistry.start({ basicAuth: { user: 'ci', password: 's3cret' } });
    try {
      const layout = join(root, 'private');
      buildOciLayout(layout, 'v1', [trees.base]);
      secured.push(layout, 'v1', 'team/private', { creds: 'ci:s3cret' });
      const ref = `${secured.host}/team/private:v1`;
      const dockerDir = join(world.env.HOME ?? root, '.docker');
      mkdirSync(dockerDir, { recursive: true });
      const login = (password: string): void => {
        writeFileSync(
          join(dockerDir, 'config.json'),
          JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from(`ci:${password}`).toString('base64') } } }),
        );
      };
      rmSync(join(dockerDir, 'config.json'), { force: true });
      const anonymous = await world.run(['image', 'pull', ref]);
      assert.match(anonymous.stderr, /error\[ERR_REGISTRY_AUTH\]/);
      login('wrong');
      const wrong = await world.run(['image', 'pull', ref]);
      assert.match(wrong.stderr, /error\[ERR_REGISTRY_AUTH\]/);
      login('s3cret');
      const good = await world.run(['image', 'pull', ref, '--json'], { timeoutMs: 300_000 });
      assert.equal(good.code, 0, good.stderr);
      assert.equal((JSON.parse(good.stdout) as { image: ImageInfo }).image.name, 'private-v1');
      rmSync(join(dockerDir, 'config.json'), { force: true });
    } finally {
      secured.close();
    }
  });

  test('a cancelled pull leaves no row, no staging dir and no partial blob', async () => {
    const big = join(root, 'big');
    mkdirSync(join(big, 'data'), { recursive: true });
    // Incompressible, so the layer is large enough to still be downloading or unpacking when cancelled.
    for (let i = 0; i < 8; i++) writeFileSync(join(big, 'data', `chunk-${i}`), createHash('sha512').update(String(i)).digest().toString('hex').repeat(40_000));
    const layout = join(root, 'big-layout');
    buildOciLayout(layout, 'v1', [trees.base, big]);
    registry.push(layout, 'v1', 'team/big');
    const before = await images();
    const child = world.spawn(['image', 'pull', `${registry.host}/team/big:v1`, '--json']);
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/"stage":"(layers|unpack|flatten)"/.test(stderr)) resolve();
      });
      child.on('close', () => {
        resolve();
      });
    });
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    // The daemon finishes its cleanup before it answers the cancel; give the next request a moment anyway via a list.
    assert.deepEqual(
      (await images()).map((i) => i.id),
      before.map((i) => i.id),
    );
    await assertImagesDirClean();
    assertBlobCacheWhole();
  });
});
