import { spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

import type { BundleFile } from '../../guest/dropbear.js';
import { findExecutable } from '../../host/executables.js';
import { BangerError } from '../../rpc/errors.js';
import type { Descriptor } from '../oci/manifest.js';
import { formatReference, type ImageReference } from '../oci/reference.js';
import type { RegistryClient } from '../oci/registry-client.js';
import type { OpContext } from '../op-context.js';
import type { BuildHost } from './build-namespace.js';
import { packExt4 } from './ext4-pack.js';
import { guestFitEntries, resolveImageUser } from './guest-fit.js';
import { MergedTree } from './layer-merge.js';

/**
 * An image from a registry to an ext4 root, rootless:
 *  1. the manifest (linux/amd64 from an index), the config and every layer,
 *     each verified against its digest into the blob cache (registry-client);
 *  2. each layer decompressed (gzip, zstd or none, told by its first bytes)
 *     into the staging dir, its sha256 checked against the config's diff_id;
 *  3. the layers flattened into one tarball (layer-merge: whiteouts, opaque
 *     directories, hard links; unsafe paths refused), with what banger needs
 *     added (guest-fit: its SSH server, mount points, a root login);
 *  4. that tarball packed into ext4 by packExt4, which unpacks it in a user
 *     namespace where the image's owners are real (uid 0 stays 0, 1000 stays
 *     1000) and nothing is ever unpacked on the host's own disk.
 * Nothing of it is run: no root process and no image program touches the
 * content on the host.
 */

/** What `vm exec` takes from the image's config. */
export interface OciRunConfig {
  env: string[];
  workingDir: string | null;
  /** A login name for `su`; null for root. */
  user: string | null;
}

export interface OciPullResult {
  /** The image manifest's digest (of the platform manifest, for an index). */
  digest: string;
  sizeBytes: number;
  run: OciRunConfig;
  layers: number;
  /** Bytes downloaded (0 when every blob was cached). */
  downloadedBytes: number;
}

interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: { Env?: unknown; WorkingDir?: unknown; User?: unknown } | null;
  rootfs?: { diff_ids?: unknown };
}

export interface OciPullInputs {
  client: RegistryClient;
  ref: ImageReference;
  blobCache: string;
  staging: string;
  host: BuildHost;
  bundle: readonly BundleFile[];
}

/** Resolves `ref` to its manifest digest only (the "is it up to date" check). */
export async function currentDigest(client: RegistryClient, ref: ImageReference, signal: AbortSignal): Promise<string> {
  return (await client.getImageManifest(ref, { signal })).digest;
}

/** Pulls `ref` into `<staging>/<rootfs>`; see the module comment. Temporary files stay in `staging`. */
export async function pullOciImage(inputs: OciPullInputs, rootfs: string, ctx: OpContext): Promise<OciPullResult> {
  const { client, ref, blobCache, staging } = inputs;
  const what = formatReference(ref);
  ctx.progress('manifest', `resolving ${what}`);
  const { digest, manifest } = await client.getImageManifest(ref, { signal: ctx.signal });
  let downloadedBytes = 0;
  const fetch = async (descriptor: Descriptor, stage: string, label: string): Promise<string> => {
    let received = 0;
    const path = await client.fetchBlob(ref, descriptor.digest, blobCache, {
      signal: ctx.signal,
      size: descriptor.size,
      onProgress: (progress) => {
        received = progress.received;
        ctx.progress(stage, label, { current: progress.received, total: progress.total ?? descriptor.size });
      },
    });
    downloadedBytes += received;
    return path;
  };
  const config = parseConfig(await readSmall(await fetch(manifest.config, 'config', 'image config')), what);
  const listed = config.rootfs?.diff_ids;
  const diffIds = Array.isArray(listed) ? listed.filter((d): d is string => typeof d === 'string') : [];
  if (!Array.isArray(listed) || diffIds.length !== listed.length || diffIds.length !== manifest.layers.length) {
    throw new BangerError('ERR_IMAGE_INVALID', `the config of ${what} lists ${diffIds.length} layer digests for ${manifest.layers.length} layers`, {
      hint: 'the image is malformed; rebuild or re-push it',
    });
  }
  const layerFiles: string[] = [];
  for (const [index, layer] of manifest.layers.entries()) {
    const label = `layer ${index + 1}/${manifest.layers.length} (${layer.digest.slice(7, 19)})`;
    const blob = await fetch(layer, 'layers', label);
    ctx.progress('unpack', `decompressing ${label}`);
    const target = join(staging, `layer-${index}.tar`);
    layerFiles.push(await decompressLayer(blob, target, diffIds[index] ?? '', label, ctx.signal));
  }
  ctx.progress('flatten', `flattening ${manifest.layers.length} layer${manifest.layers.length === 1 ? '' : 's'}`);
  const tree = await MergedTree.build(layerFiles, ctx.signal);
  tree.addExtras(await guestFitEntries(tree, inputs.bundle));
  const env = stringList(config.config?.Env);
  const workingDir = typeof config.config?.WorkingDir === 'string' && config.config.WorkingDir.startsWith('/') ? config.config.WorkingDir : null;
  const user = (await resolveImageUser(tree, typeof config.config?.User === 'string' ? config.config.User : undefined)) ?? null;
  const merged = join(staging, 'rootfs.tar');
  await tree.write(merged, ctx.signal);
  for (const file of layerFiles) if (file.startsWith(staging)) rmSync(file, { force: true });
  const sizeBytes = await packExt4(merged, rootfs, inputs.host, ctx);
  rmSync(merged, { force: true });
  return { digest, sizeBytes, run: { env, workingDir, user }, layers: manifest.layers.length, downloadedBytes };
}

function parseConfig(data: Buffer, what: string): ImageConfig {
  let config: unknown;
  try {
    config = JSON.parse(data.toString('utf8'));
  } catch {
    throw new BangerError('ERR_IMAGE_INVALID', `the config of ${what} is not JSON`, { hint: 'the image is malformed; rebuild or re-push it' });
  }
  if (typeof config !== 'object' || config === null) throw new BangerError('ERR_IMAGE_INVALID', `the config of ${what} is not an object`);
  const parsed = config as ImageConfig;
  if ((parsed.os !== undefined && parsed.os !== 'linux') || (parsed.architecture !== undefined && parsed.architecture !== 'amd64')) {
    throw new BangerError('ERR_IMAGE_INVALID', `${what} is a ${parsed.os ?? '?'}/${parsed.architecture ?? '?'} image; banger runs linux/amd64`, {
      hint: 'pull the linux/amd64 variant of the image',
    });
  }
  return parsed;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

async function readSmall(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    return await file.readFile();
  } finally {
    await file.close();
  }
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/**
 * The uncompressed tar of a layer blob, checked against its diff_id: an
 * uncompressed blob is used where it is (its digest is its diff_id), a
 * compressed one is written to `target`.
 */
export async function decompressLayer(blob: string, target: string, diffId: string, label: string, signal: AbortSignal): Promise<string> {
  const head = Buffer.alloc(4);
  const file = await open(blob, 'r');
  try {
    await file.read(head, 0, 4, 0);
  } finally {
    await file.close();
  }
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  let source = blob;
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) {
    await pipeline(createReadStream(blob), createGunzip(), tap, createWriteStream(target, { mode: 0o600 }), { signal }).catch((error: unknown) => {
      throw corrupt(label, error);
    });
    source = target;
  } else if (head.equals(ZSTD_MAGIC)) {
    await unzstd(blob, target, tap, label, signal);
    source = target;
  } else {
    await pipeline(createReadStream(blob), hashSink(hash), { signal });
  }
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== diffId) {
    if (source === target) rmSync(target, { force: true });
    throw new BangerError('ERR_VERIFY_FAILED', `${label} unpacks to ${actual}, but the image config says ${diffId}`, {
      hint: 'the image is corrupt or was altered; nothing was kept',
    });
  }
  return source;
}

/** A sink that only hashes what it is given. */
function hashSink(hash: Hash): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done();
    },
  });
}

function corrupt(label: string, error: unknown): Error {
  if (error instanceof Error && error.name === 'AbortError') return error;
  return new BangerError('ERR_IMAGE_INVALID', `${label} does not decompress: ${error instanceof Error ? error.message : String(error)}`, {
    hint: 'the layer is corrupt; nothing was kept',
  });
}

async function unzstd(blob: string, target: string, tap: Transform, label: string, signal: AbortSignal): Promise<void> {
  const zstd = findExecutable('zstd');
  if (zstd === undefined)
    throw new BangerError('ERR_HOST_TOOL_MISSING', `${label} is zstd-compressed and zstd is not installed`, { hint: 'sudo apt-get install zstd' });
  const child = spawn(zstd, ['-dc', '--', blob], { stdio: ['ignore', 'pipe', 'pipe'], signal });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  child.on('error', () => undefined);
  await pipeline(child.stdout, tap, createWriteStream(target, { mode: 0o600 }), { signal }).catch((error: unknown) => {
    throw corrupt(label, error);
  });
  const code = await exited;
  if (code !== 0) throw corrupt(label, new Error(stderr.trim() || `zstd exited ${code ?? 'by a signal'}`));
}
