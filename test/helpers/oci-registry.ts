/**
 * A real OCI registry on loopback for tests: Debian's `docker-registry`
 * (the CNCF distribution server) with filesystem storage in a temp dir, and
 * images pushed to it with Debian's `skopeo` from OCI layouts built here.
 * Nothing is faked: the registry speaks the real distribution protocol.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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

  /** With `basicAuth`, every request needs that user and password (htpasswd with bcrypt, as the registry requires). */
  static async start(options: { basicAuth?: { user: string; password: string } } = {}): Promise<TestRegistry> {
    const root = mkdtempSync(join(tmpdir(), 'banger-registry-'));
    const port = await freePort();
    const config = join(root, 'config.yml');
    const auth: string[] = [];
    if (options.basicAuth !== undefined) {
      const htpasswd = spawnSync('htpasswd', ['-Bbn', options.basicAuth.user, options.basicAuth.password], { encoding: 'utf8' });
      if (htpasswd.status !== 0) throw new Error(`htpasswd failed: ${htpasswd.stderr}`);
      writeFileSync(join(root, 'htpasswd'), htpasswd.stdout);
      auth.push('auth:', '  htpasswd:', '    realm: banger-test', `    path: ${join(root, 'htpasswd')}`);
    }
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
        ...auth,
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
        if (response.ok || response.status === 401) break;
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

  /**
   * Pushes an OCI layout (`dir`, tag `tag` in its index) as `<host>/<name>:<tag>`
   * with skopeo: every platform of a multi-platform index (`--all`), with
   * `creds` (user:password) for a registry behind basic auth.
   */
  push(layoutDir: string, tag: string, name: string, options: { creds?: string } = {}): void {
    const creds = options.creds === undefined ? [] : [`--dest-creds=${options.creds}`];
    const result = spawnSync(
      'skopeo',
      ['copy', '--quiet', '--all', '--dest-tls-verify=false', ...creds, `oci:${layoutDir}:${tag}`, `docker://${this.host}/${name}:${tag}`],
      { encoding: 'utf8' },
    );
    if (result.status !== 0) throw new Error(`skopeo copy failed: ${result.stderr}`);
  }

  /** Overwrites a stored blob's bytes in the registry's storage (the registry serves them unchecked). */
  corruptBlob(digest: string): void {
    const hex = digest.replace(/^sha256:/, '');
    const path = join(this.#root, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    const data = readFileSync(path);
    data[data.length - 5] = (data[data.length - 5] ?? 0) ^ 0xff;
    writeFileSync(path, data);
  }

  close(): void {
    this.#process.kill('SIGKILL');
    rmSync(this.#root, { recursive: true, force: true });
  }
}

/** What an image's config may carry besides its layers. */
export interface ImageConfigFields {
  Env?: string[];
  WorkingDir?: string;
  User?: string;
}

export interface LayoutOptions {
  config?: ImageConfigFields;
  /**
   * `index`: the tag names a multi-platform index, the image as its
   * linux/amd64 entry beside a linux/arm64 one (same layers, its own config);
   * `arm64-only`: an index with only the arm64 entry.
   */
  platforms?: 'single' | 'index' | 'arm64-only';
  /** Raw layer tarballs to use as they are (gzipped here), after the trees' layers. */
  rawLayers?: readonly Buffer[];
}

/**
 * Builds an OCI image layout in `dir` whose image has one gzip layer per
 * tree (each a directory packed with GNU tar, owners and modes as on disk,
 * so a test can chown files first), tagged `tag`. Returns the descriptor of
 * the linux/amd64 image manifest (for an index: of its amd64 entry).
 */
export function buildOciLayout(dir: string, tag: string, layerTrees: readonly string[], options: LayoutOptions = {}): Descriptor {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const writeBlob = (data: Buffer, mediaType: string): Descriptor => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(blobs, hex), data);
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  };
  const diffIds: string[] = [];
  const tars = layerTrees.map((tree) => {
    // Deterministic for an unchanged tree (sorted, no atime/ctime, no pid in header names), so layers repeat byte for byte.
    const tar = spawnSync(
      'tar',
      [
        '-C',
        tree,
        '--numeric-owner',
        '--xattrs',
        '--format=pax',
        '--sort=name',
        '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
        '-cf',
        '-',
        '.',
      ],
      { maxBuffer: 1024 ** 3 },
    );
    if (tar.status !== 0) throw new Error(`tar of ${tree} failed: ${tar.stderr.toString()}`);
    return tar.stdout;
  });
  const layers = [...tars, ...(options.rawLayers ?? [])].map((tar) => {
    diffIds.push(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
    const gzip = spawnSync('gzip', ['-n', '-c'], { input: tar, maxBuffer: 1024 ** 3 });
    return writeBlob(gzip.stdout, OCI_LAYER_GZIP);
  });
  const manifestFor = (architecture: string): Descriptor => {
    const config = writeBlob(
      Buffer.from(
        JSON.stringify({
          architecture,
          os: 'linux',
          config: { Env: ['PATH=/usr/bin:/bin'], ...options.config },
          rootfs: { type: 'layers', diff_ids: diffIds },
        }),
      ),
      OCI_CONFIG,
    );
    return writeBlob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers })), OCI_MANIFEST);
  };
  const amd64 = manifestFor('amd64');
  let top: Descriptor = amd64;
  const platforms = options.platforms ?? 'single';
  if (platforms !== 'single') {
    const arm64 = manifestFor('arm64');
    const entries = [
      ...(platforms === 'index' ? [{ ...amd64, platform: { architecture: 'amd64', os: 'linux' } }] : []),
      { ...arm64, platform: { architecture: 'arm64', os: 'linux' } },
    ];
    top = writeBlob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries })), OCI_INDEX);
  }
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ ...top, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return amd64;
}

/**
 * The layer trees of the image the pull tests use (needs root, to chown):
 * a busybox userland and an /etc/passwd with a uid-1000 user `dev`; a
 * setuid root file; a file and directory owned by 1000; a hard link pair;
 * files the upper layer removes (a whiteout) or hides (an opaque directory).
 */
export function fixtureImageTrees(root: string): { base: string; top: string } {
  const base = join(root, 'base');
  const top = join(root, 'top');
  for (const dir of ['bin', 'etc', 'usr/bin', 'home/dev', 'opt/old', 'srv']) mkdirSync(join(base, dir), { recursive: true });
  const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(join(base, 'bin', 'busybox'), readFileSync(busybox));
  chmodSync(join(base, 'bin', 'busybox'), 0o755);
  symlinkSync('busybox', join(base, 'bin', 'sh'));
  writeFileSync(join(base, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n');
  writeFileSync(join(base, 'etc', 'group'), 'root:x:0:\ndev:x:1000:\n');
  writeFileSync(join(base, 'etc', 'gone'), 'whited out above\n');
  writeFileSync(join(base, 'usr', 'bin', 'setuid-tool'), '#!/bin/sh\nid -u\n');
  chmodSync(join(base, 'usr', 'bin', 'setuid-tool'), 0o4755);
  writeFileSync(join(base, 'home', 'dev', 'notes'), 'mine\n');
  chmodSync(join(base, 'home', 'dev', 'notes'), 0o600);
  chownSync(join(base, 'home', 'dev'), 1000, 1000);
  chownSync(join(base, 'home', 'dev', 'notes'), 1000, 1000);
  writeFileSync(join(base, 'srv', 'data'), 'linked\n');
  linkSync(join(base, 'srv', 'data'), join(base, 'srv', 'data-link'));
  writeFileSync(join(base, 'opt', 'old', 'lower'), 'hidden by the opaque dir above\n');
  for (const dir of ['etc', 'opt/old']) mkdirSync(join(top, dir), { recursive: true });
  writeFileSync(join(top, 'etc', '.wh.gone'), '');
  writeFileSync(join(top, 'opt', 'old', '.wh..wh..opq'), '');
  writeFileSync(join(top, 'opt', 'old', 'upper'), 'from the top layer\n');
  return { base, top };
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
