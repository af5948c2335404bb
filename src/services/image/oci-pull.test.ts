import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { decompressLayer } from './oci-pull.js';

/** Layer decompression against real gzip (zlib) and zstd (the binary), with diff_id checks. */

const root = mkdtempSync(join(tmpdir(), 'banger-layers-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const tar = Buffer.concat([Buffer.from('pretend this is a tar stream '.repeat(1000)), Buffer.alloc(1024)]);
const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
const signal = new AbortController().signal;

test('gzip, zstd and uncompressed layers unpack to the tar their diff_id names', async () => {
  const gz = join(root, 'layer.gz');
  writeFileSync(gz, gzipSync(tar));
  const gzOut = join(root, 'gz.tar');
  assert.equal(await decompressLayer(gz, gzOut, diffId, 'layer 1/3', signal), gzOut);
  assert.deepEqual(readFileSync(gzOut), tar);

  const plain = join(root, 'layer.tar');
  writeFileSync(plain, tar);
  const zst = join(root, 'layer.zst');
  execFileSync('zstd', ['-q', '-f', '-o', zst, plain]);
  const zstOut = join(root, 'zst.tar');
  assert.equal(await decompressLayer(zst, zstOut, diffId, 'layer 2/3', signal), zstOut);
  assert.deepEqual(readFileSync(zstOut), tar);

  assert.equal(await decompressLayer(plain, join(root, 'unused.tar'), diffId, 'layer 3/3', signal), plain, 'an uncompressed layer is used in place');
  assert.equal(existsSync(join(root, 'unused.tar')), false);
});

test('a layer whose content is not its diff_id, or that does not decompress, is refused and nothing is kept', async () => {
  const gz = join(root, 'other.gz');
  writeFileSync(gz, gzipSync(Buffer.from('something else')));
  const out = join(root, 'other.tar');
  await assert.rejects(decompressLayer(gz, out, diffId, 'layer 1/1', signal), { code: 'ERR_VERIFY_FAILED', message: /layer 1\/1 unpacks to sha256:/ });
  assert.equal(existsSync(out), false);

  const broken = join(root, 'broken.gz');
  const whole = gzipSync(tar);
  writeFileSync(broken, whole.subarray(0, whole.length - 6)); // no trailer: cut off in transit
  await assert.rejects(decompressLayer(broken, join(root, 'broken.tar'), diffId, 'layer 1/1', signal), {
    code: 'ERR_IMAGE_INVALID',
    message: /does not decompress/,
  });
  const brokenZstd = join(root, 'broken.zst');
  const good = join(root, 'good.zst');
  writeFileSync(join(root, 'good.tar'), tar);
  execFileSync('zstd', ['-q', '-f', '-o', good, join(root, 'good.tar')]);
  const frame = readFileSync(good);
  writeFileSync(brokenZstd, frame.subarray(0, frame.length - 4));
  await assert.rejects(decompressLayer(brokenZstd, join(root, 'bz.tar'), diffId, 'layer 1/1', signal), { code: 'ERR_IMAGE_INVALID' });
});
