import { mkdirSync, readdirSync, readFileSync, rmSync, lstatSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import Database from 'better-sqlite3';

import { BangerWorld } from '../integration/harness.js';
import { RpcClient } from '../../src/rpc/client.js';
import type { PingResult } from '../../src/rpc/methods.js';
import { openStore } from '../../src/store/database.js';
import { ImagesRepo } from '../../src/store/images-repo.js';
import { KernelsRepo } from '../../src/store/kernels-repo.js';
import { VmsRepo } from '../../src/store/vms-repo.js';

/**
 * The world the corpus runs in: a private BangerWorld whose config makes
 * every way to a boot or a download a dead end, whatever a case does: the
 * default image does not exist and is not in the catalog (no pull), the
 * kernel mirror is a closed local port, QEMU is a path that does not exist
 * (no VMM, so no VM can start), and the bridge is the world's own name, which
 * exists nowhere (the daemon sets up no network). The store is seeded with
 * kernels, images and VMs that exist only as rows, so names can clash and
 * prefixes can be ambiguous.
 */
export const GUARD_CONFIG = [
  'default_image = "corpus-none"',
  'vmm = "qemu"',
  'qemu_bin = "/nonexistent/banger-corpus/qemu-system-x86_64"',
  'kernel_mirror = "http://127.0.0.1:9/debian"',
].join('\n');

/** Rows the store starts with (names the cases refer to). */
export const SEEDED = {
  kernels: ['corpus-kernel', 'corpus-kernel2'],
  images: ['corpus-image', 'corpus-image2'],
  vms: ['box', 'box2', 'bob'],
} as const;

export class CorpusWorld {
  readonly world: BangerWorld;
  /** The world's [network] table, kept under every config the corpus writes. */
  readonly #network: string;

  private constructor(world: BangerWorld) {
    this.world = world;
    world.writeConfig(GUARD_CONFIG);
    this.#network = readFileSync(world.layout.configFile, 'utf8').slice(GUARD_CONFIG.length + 1);
  }

  static create(): CorpusWorld {
    const corpus = new CorpusWorld(new BangerWorld({ network: true }));
    corpus.#seed();
    return corpus;
  }

  get socketPath(): string {
    return this.world.layout.socketPath;
  }

  #seed(): void {
    mkdirSync(this.world.layout.stateDir, { recursive: true, mode: 0o700 });
    // The dirs a daemon that has imported something has; a failed import must leave them as they were.
    for (const dir of [this.world.layout.kernelsDir, this.world.layout.imagesDir, this.world.layout.vmsDir]) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const store = openStore(this.world.layout.storePath);
    try {
      const kernels = new KernelsRepo(store);
      const images = new ImagesRepo(store);
      const vms = new VmsRepo(store);
      const kernelIds = SEEDED.kernels.map((name, i) => {
        const id = `c0${i}0000000000000`.slice(0, 16);
        kernels.insert({ id, name, state: 'ready', source: 'import', version: null, spec: { modules: [], initHash: 'corpus' } });
        return id;
      });
      const imageIds = SEEDED.images.map((name, i) => {
        const id = `c1${i}0000000000000`.slice(0, 16);
        images.insert({
          id,
          name,
          state: 'ready',
          source: 'register',
          kernelId: kernelIds[0] ?? '',
          spec: { rootfs: '/nonexistent/banger-corpus/rootfs.ext4', managed: false, sizeBytes: 1 },
        });
        return id;
      });
      SEEDED.vms.forEach((name, i) => {
        const id = `c2${i}0000000000000`.slice(0, 16);
        const spec = { vcpu: 1, memoryMiB: 1024, diskSizeBytes: 8 * 1024 ** 3, init: 'minimal' as const, nat: false, network: 'isolated' as const };
        vms.reserve({ id, name, imageId: imageIds[0] ?? '', spec }, 250);
        vms.setState(id, 'stopped');
      });
    } finally {
      store.close();
    }
  }

  /** Writes config.toml: the guard config and this world's [network] (or `text` as given, with the world's [network] keys it lacks). */
  writeConfig(text?: string): void {
    if (text === undefined) {
      this.world.writeConfig(GUARD_CONFIG);
      return;
    }
    rmSync(this.world.layout.configFile, { recursive: true, force: true });
    writeFileSync(this.world.layout.configFile, withNetwork(text, this.#network));
  }

  /** Replaces config.toml with a directory (an unreadable config). */
  configAsDirectory(): void {
    rmSync(this.world.layout.configFile, { force: true });
    mkdirSync(this.world.layout.configFile);
  }

  /** The daemon's ping, or undefined when no daemon answers. */
  async ping(): Promise<PingResult | undefined> {
    let client: RpcClient;
    try {
      client = await RpcClient.connect(this.socketPath);
    } catch {
      return undefined;
    }
    try {
      return await client.call('ping', {});
    } finally {
      client.close();
    }
  }

  /**
   * Waits until the daemon serves nothing but the ping asking: every request
   * a case started has finished or been cancelled. Returns that ping.
   */
  settled(): Promise<PingResult> {
    return this.inFlight(1, (n) => n === 1);
  }

  /**
   * Polls until the daemon's in-flight count (the asking ping included)
   * satisfies `done` (default: at least `count`). No deadline of its own: the
   * test's timeout guards a hang.
   */
  async inFlight(count: number, done: (n: number) => boolean = (n) => n >= count): Promise<PingResult> {
    for (;;) {
      const ping = await this.ping();
      if (ping === undefined) throw new Error('the daemon does not answer a ping');
      if (done(ping.inFlight)) return ping;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Everything a case could have changed, as text: every row of every table
   * (read through a read-only connection of its own), then the state and
   * runtime dirs. Files whose size changes with use alone (the log, SQLite's
   * WAL and shared memory) are listed by name only.
   */
  snapshot(): string {
    const lines: string[] = [];
    const db = new Database(this.world.layout.storePath, { readonly: true, fileMustExist: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
      for (const { name } of tables) {
        for (const row of db.prepare(`SELECT * FROM "${name}" ORDER BY 1`).all()) lines.push(`${name}: ${JSON.stringify(row)}`);
      }
    } finally {
      db.close();
    }
    for (const dir of [this.world.layout.stateDir, this.world.layout.runtimeDir]) lines.push(`# ${dir}`, ...listing(dir, dir));
    return lines.join('\n');
  }

  close(): void {
    this.world.close();
  }
}

const VOLATILE = new Set(['bangerd.log', 'state.db', 'state.db-wal', 'state.db-shm']);

function listing(root: string, dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [`${relative(root, dir) || '.'}: absent`];
  }
  return names.flatMap((name) => {
    const path = join(dir, name);
    const stat = lstatSync(path);
    const label = `${root === dir ? '' : relative(root, dir) + '/'}${name}`;
    if (stat.isDirectory()) return [`${label}/`, ...listing(root, path)];
    return [`${label} ${stat.isFile() ? (VOLATILE.has(name) ? 'file' : `file ${stat.size}`) : 'other'}`];
  });
}

/** `text` plus the world's [network] keys it does not set itself (so a case never touches a shared bridge). */
function withNetwork(text: string, network: string): string {
  const ownKeys = network
    .split('\n')
    .filter((line) => /^\w+ = /.test(line))
    .filter((line) => !new RegExp(`^\\s*${line.split(' ')[0] ?? ''}\\s*=`, 'm').test(text));
  if (/^\s*network\s*=/m.test(text)) return text; // a case about `network` itself
  if (!/^\[network\]\s*$/m.test(text)) return `${text}\n[network]\n${ownKeys.join('\n')}\n`;
  return text.replace(/^\[network\]\s*$/m, `[network]\n${ownKeys.join('\n')}`);
}
