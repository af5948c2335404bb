/**
 * A real OCI registry on loopback for tests: Debian's `docker-registry`
 * (the CNCF distribution server) with filesystem storage in a temp dir, and
 * images pushed to it with Debian's `skopeo` from OCI layouts built here.
 * Nothing is faked: the registry speaks the real distribution protocol.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
}

/** A running registry; `close()` stops it and removes its storage. */
export class TestRegistry {
  readonly host: string;
  readonly #process: ChildProcess;
  readonly #root: string;

  private constructor(host: string, child: ChildProcess, root: string) {
    this.host = host;
    this.#process = child;
    this.#root = root;
  }

  static async start(): Promise<TestRegistry> {
    const root = mkdtempSync(join(tmpdir(), 'banger-registry-'));
    const port = await freePort();
    const config = join(root, 'config.yml');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${join(root, 'data')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const host = `127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const response = await fetch(`http://${host}/v2/`);
        if (response.ok) break;
      } catch {
        // not listening yet
      }
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        rmSync(root, { recursive: true, force: true });
        throw new Error(`docker-registry did not start: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return new TestRegistry(host, child, root);
  }

  /** Pushes an OCI layout (`dir`, tag `tag` in its index) as `<host>/<name>:<tag>` with skopeo. */
  push(layoutDir: string, tag: string, name: string): void {
    const result = spawnSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layoutDir}:${tag}`, `docker://${this.host}/${name}:${tag}`], {
      encoding: 'utf8',
    });
    if (result.status !== 0) throw new Error(`skopeo copy failed: ${result.stderr}`);
  }

  close(): void {
    this.#process.kill('SIGKILL');
    rmSync(this.#root, { recursive: true, force: true });
  }
}

/**
 * Builds an OCI image layout in `dir` whose image has one gzip layer per
 * tree (each a directory packed with GNU tar, owners and modes as on disk,
 * so a test can chown files first), tagged `tag`. Returns the manifest's
 * descriptor.
 */
export function buildOciLayout(dir: string, tag: string, layerTrees: readonly string[]): Descriptor {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const writeBlob = (data: Buffer, mediaType: string): Descriptor => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, hex), data);
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  };
  const diffIds: string[] = [];
  const layers = layerTrees.map((tree) => {
    const tar = spawnSync('tar', ['-C', tree, '--numeric-owner', '--xattrs', '-cf', '-', '.'], { maxBuffer: 1024 ** 3 });
    if (tar.status !== 0) throw new Error(`tar of ${tree} failed: ${tar.stderr.toString()}`);
    diffIds.push(`sha256:${createHash('sha256').update(tar.stdout).digest('hex')}`);
    const gzip = spawnSync('gzip', ['-n', '-c'], { input: tar.stdout, maxBuffer: 1024 ** 3 });
    return writeBlob(gzip.stdout, OCI_LAYER_GZIP);
  });
  const config = writeBlob(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/usr/bin:/bin'] }, rootfs: { type: 'layers', diff_ids: diffIds } })),
    OCI_CONFIG,
  );
  const manifest = writeBlob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers })), OCI_MANIFEST);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return manifest;
}

/** The JSON of a blob in a layout (tests compare what a client fetched with what was pushed). */
export function layoutBlob(dir: string, digest: string): Buffer {
  return readFileSync(join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}
