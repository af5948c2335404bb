import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { resolveLayout, type Layout } from '../../src/config/paths.js';
import { nftTableName } from '../../src/root-helper/policy.js';
import { pidAlive } from '../../src/host/process.js';
import { TestRootHelper } from '../helpers/root-helper.js';
import { asUser, ensureTestUser, type TestUser } from '../helpers/test-user.js';
import type { KernelInfo } from '../../src/rpc/methods.js';

/** Repo root (this file runs from dist/test/integration/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BANGER_BIN = join(REPO_ROOT, 'bin', 'banger');
export const BANGERD_ENTRY = join(REPO_ROOT, 'dist', 'src', 'daemon', 'main.js');

/**
 * Download cache shared by every test world (and kept between runs): Debian
 * indexes and packages are content-addressed by sha256, so sharing is safe and
 * a cache miss only costs time. CI points BANGER_TEST_CACHE at a directory
 * that survives across runs on the same machine.
 */
export const SHARED_CACHE = process.env.BANGER_TEST_CACHE ?? join(REPO_ROOT, '.cache', 'test');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * A private banger world for one test: its own XDG config/state/cache/runtime
 * dirs under a temp dir, so tests never touch the real user's banger and can
 * run side by side. `close()` stops any daemon it started and removes it all.
 */
export class BangerWorld {
  readonly root: string;
  readonly env: NodeJS.ProcessEnv;
  readonly layout: Layout;

  /** Bridge of this world's VMs when created with `network: true`. */
  readonly bridge: string | undefined;

  /** This world's subnet when created with `network: true`. */
  readonly subnet: string | undefined;

  /** The ordinary user banger runs as in this world (the root helper then makes the privileged changes), or undefined for root. */
  readonly user: TestUser | undefined;

  /** The network namespace banger (and its helper) run in, if any. */
  readonly netns: string | undefined;

  /** This world's [network] table (DNS port, bridge, subnet), kept by writeConfig. */
  readonly #networkConfig: string;

  #helper: TestRootHelper | undefined;

  constructor(options: WorldOptions = {}) {
    this.root = mkdtempSync(join(tmpdir(), 'banger-it-'));
    this.user = options.user;
    this.netns = options.netns;
    let cache = options.sharedDownloads === true ? SHARED_CACHE : join(this.root, 'cache');
    if (this.user !== undefined && options.sharedDownloads === true) {
      // The shared cache is root's and may sit under a private dir (the checkout's .cache/ is 0700): the user
      // keeps downloads of its own, next to CI's persistent cache when there is one, else in /tmp.
      if (process.env.BANGER_TEST_CACHE !== undefined) {
        chmodSync(SHARED_CACHE, 0o755); // traversable to reach the user's part (verified public downloads only)
        cache = join(SHARED_CACHE, `as-${this.user.name}`);
      } else {
        cache = join(tmpdir(), `banger-test-cache-as-${this.user.name}`);
      }
      mkdirSync(cache, { recursive: true });
      chownTree(cache, this.user);
    }
    this.env = {
      ...process.env,
      HOME: join(this.root, 'home'),
      XDG_CONFIG_HOME: join(this.root, 'config'),
      XDG_STATE_HOME: join(this.root, 'state'),
      XDG_CACHE_HOME: cache,
      XDG_RUNTIME_DIR: options.runtimeParent ?? join(this.root, 'run'),
    };
    this.layout = resolveLayout({ env: this.env, uid: this.user?.uid ?? process.getuid?.() ?? 0, home: join(this.root, 'home') });
    // A DNS port of its own, and with `network` a bridge and subnet of its own, so worlds (and a developer's real banger) never collide.
    const [a = 0, b = 0, c = 0, d = 0] = randomBytes(4);
    let network = `[network]\ndns_port = ${20_000 + ((c * 256 + d) % 40_000)}\n`;
    if (options.network === true) {
      this.bridge = `bt${randomBytes(2).toString('hex')}`;
      this.subnet = options.subnet ?? `10.${100 + (a % 100)}.${b}.0/24`;
      network += `bridge = "${this.bridge}"\nsubnet = "${this.subnet}"\n`;
    } else {
      this.bridge = undefined;
      this.subnet = undefined;
    }
    this.#networkConfig = network;
    this.writeConfig('');
    if (this.user !== undefined) {
      // Test repos belong to root; git, run as the user, would refuse them as "dubious ownership".
      mkdirSync(this.env.HOME ?? join(this.root, 'home'), { recursive: true });
      writeFileSync(join(this.env.HOME ?? join(this.root, 'home'), '.gitconfig'), '[safe]\n\tdirectory = *\n');
      this.env.BANGER_ROOT_HELPER_SOCKET = join(this.root, 'helper', 'sock', `${this.user.uid}.sock`);
      chownTree(this.root, this.user);
    }
  }

  /** A world, with its root helper already running when it has a user (vmWorldOptions in user mode). */
  static async create(options: WorldOptions = {}): Promise<BangerWorld> {
    const world = new BangerWorld(options);
    if (world.user !== undefined && world.bridge !== undefined) {
      // What `banger system install` does for real: QEMU, as the user, opens the taps it owns through /dev/net/tun.
      chmodSync('/dev/net/tun', 0o666);
      await world.startHelper();
    }
    return world;
  }

  /**
   * Starts this world's root helper (user worlds: the daemon reaches it at
   * BANGER_ROOT_HELPER_SOCKET), allowing the world's user its bridge and subnet.
   */
  async startHelper(): Promise<TestRootHelper> {
    if (this.user === undefined || this.bridge === undefined || this.subnet === undefined)
      throw new Error('startHelper needs a world with a user and a network');
    this.#helper ??= await TestRootHelper.start(
      join(this.root, 'helper'),
      [{ uid: this.user.uid, gid: this.user.gid, bridge: this.bridge, subnet: this.subnet }],
      { netns: this.netns },
    );
    return this.#helper;
  }

  get helper(): TestRootHelper | undefined {
    return this.#helper;
  }

  /** Writes config.toml: `text` (top-level keys and tables), then this world's [network] table. */
  writeConfig(text: string): void {
    mkdirSync(this.layout.configDir, { recursive: true });
    writeFileSync(this.layout.configFile, `${text}\n${this.#networkConfig}`);
    if (this.user !== undefined) chownTree(join(this.root, 'config'), this.user);
  }

  /**
   * Downloads a netns world needs (its namespace has no way out), made with
   * a daemon in the host's network that is stopped afterwards: the next
   * command starts the world's daemon inside the namespace.
   */
  async pullOutsideNetns(): Promise<void> {
    this.#outside = true;
    try {
      await this.json(['image', 'pull', 'debian-bookworm'], { timeoutMs: 900_000 });
      await this.json(['daemon', 'stop']);
    } finally {
      this.#outside = false;
    }
  }

  #outside = false;

  /** argv prefix that runs a command the way banger runs in this world: in its netns, as its user. */
  commandPrefix(): string[] {
    return [...(this.netns === undefined || this.#outside ? [] : ['ip', 'netns', 'exec', this.netns]), ...(this.user === undefined ? [] : asUser(this.user))];
  }

  /**
   * Runs `banger …` to completion; `input` (if any) is its stdin. `env` adds
   * variables for this command only, and for a daemon it auto-starts (e.g.
   * BANGER_FAILPOINTS: the daemon inherits the CLI's environment).
   */
  run(args: readonly string[], options: { timeoutMs?: number; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
    const child = this.spawn(args, { stdin: options.input === undefined ? 'ignore' : 'pipe', ...(options.env === undefined ? {} : { env: options.env }) });
    if (options.input !== undefined) child.stdin?.end(options.input);
    return collect(child, options.timeoutMs ?? 60_000);
  }

  /** Runs `banger … --json`, expects success, and parses stdout. */
  async json<T>(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<T> {
    const result = await this.run([...args, '--json'], options);
    if (result.code !== 0) throw new Error(`banger ${args.join(' ')} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  }

  /** Starts `banger …` and returns the child, for tests that signal it mid-flight or feed its stdin (`env`: as for run). */
  spawn(args: readonly string[], options: { stdin?: 'ignore' | 'pipe'; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    const [command = BANGER_BIN, ...rest] = [...this.commandPrefix(), BANGER_BIN, ...args];
    return spawn(command, rest, { env: { ...this.env, ...options.env }, stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'] });
  }

  /** The pid of this world's running daemon, or undefined when none runs (asks without starting one). */
  async runningDaemonPid(): Promise<number | undefined> {
    // `daemon status` exits 3 when no daemon runs (and prints running: false).
    const result = await this.run(['daemon', 'status', '--json']);
    if (result.code !== 0 && result.code !== 3) throw new Error(`banger daemon status exited ${result.code}\nstderr: ${result.stderr}`);
    const status = JSON.parse(result.stdout) as { running: boolean; pid?: number | null };
    return status.running && typeof status.pid === 'number' ? status.pid : undefined;
  }

  /** SIGKILLs this world's daemon (if one runs) and waits until it is gone; returns its pid. The next command starts a fresh one. */
  async killDaemon(): Promise<number | undefined> {
    const pid = await this.runningDaemonPid();
    if (pid === undefined) return undefined;
    process.kill(pid, 'SIGKILL');
    await waitFor(`bangerd ${pid} to die`, () => !pidAlive(pid));
    return pid;
  }

  /** Stops this world's daemon gracefully (no-op when none runs). */
  async stopDaemon(): Promise<void> {
    const result = await this.run(['daemon', 'stop']);
    if (result.code !== 0) throw new Error(`banger daemon stop exited ${result.code}\nstderr: ${result.stderr}`);
  }

  /**
   * Starts a daemon for this world with extra environment variables (e.g.
   * BANGER_FAILPOINTS), replacing a running one; returns its pid. Later
   * commands (without `env`) talk to this daemon while it lives.
   */
  async startDaemon(env: NodeJS.ProcessEnv = {}): Promise<number> {
    await this.stopDaemon();
    const result = await this.run(['daemon', 'start'], { env });
    if (result.code !== 0) throw new Error(`banger daemon start exited ${result.code}\nstderr: ${result.stderr}`);
    const pid = await this.runningDaemonPid();
    if (pid === undefined) throw new Error('banger daemon start left no daemon running');
    return pid;
  }

  /** Runs `nft …` where this world's banger runs (its netns, if any); stdout, or undefined when nft fails (e.g. no such table). */
  nft(...args: string[]): string | undefined {
    const result = spawnSync(this.netns === undefined ? 'nft' : 'ip', [...(this.netns === undefined ? [] : ['netns', 'exec', this.netns, 'nft']), ...args], {
      encoding: 'utf8',
    });
    return result.status === 0 ? result.stdout : undefined;
  }

  /** Removes banger's nftables tables for this world's bridge (close() does it too). */
  removeNftTables(): void {
    if (this.bridge === undefined) return;
    for (const family of ['bridge', 'ip', 'ip6']) this.nft('delete', 'table', family, nftTableName(this.bridge));
  }

  /** Runs a bangerd entry point in the foreground (for startup-refusal tests). */
  runDaemon(entry: string = BANGERD_ENTRY, timeoutMs = 30_000): Promise<CliResult> {
    const [command, ...rest] = [...this.commandPrefix(), process.execPath, entry];
    return collect(spawn(command, rest, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
  }

  /** Pulls the catalog kernel (downloads come from the shared cache when there). */
  async pullCatalogKernel(): Promise<KernelInfo> {
    return (await this.json<{ kernel: KernelInfo }>(['kernel', 'pull', 'debian-bookworm-cloud'], { timeoutMs: 600_000 })).kernel;
  }

  /** Parsed JSON lines of the daemon log. */
  logLines(): Record<string, unknown>[] {
    let text: string;
    try {
      text = readFileSync(this.layout.daemonLog, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Pids of every daemon that logged "bangerd ready" in this world. */
  daemonPids(): number[] {
    return this.logLines()
      .filter((l) => l.msg === 'bangerd ready')
      .map((l) => l.pid as number);
  }

  /** Pids of VMM processes started for this world (their command lines name its directories). */
  vmmPids(): number[] {
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number)
      .filter((pid) => {
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          return cmdline.startsWith('qemu-system') || cmdline.includes('/qemu-system') ? cmdline.includes(this.root) : false;
        } catch {
          return false;
        }
      });
  }

  /** Network links whose name starts with this world's bridge name (the bridge and its taps). */
  links(): string[] {
    if (this.bridge === undefined) return [];
    const output = spawnSync('ip', [...(this.netns === undefined ? [] : ['-n', this.netns]), '-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    return output
      .split('\n')
      .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '')
      .filter((name) => name.startsWith(this.bridge ?? '\0'));
  }

  /** Stops everything this world started (daemons, VMs, taps, bridge) and removes its files. */
  close(): void {
    for (const pid of [...this.daemonPids(), ...this.vmmPids()]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    void this.#helper?.stop();
    for (const link of this.links().reverse()) spawnSync('ip', [...(this.netns === undefined ? [] : ['-n', this.netns]), 'link', 'del', link]);
    // banger keeps its nftables tables (named after the bridge) across daemon restarts; the world's go with its bridge.
    this.removeNftTables();
    // A daemon killed a moment ago may still be writing its log: retry a directory that filled up again (ENOTEMPTY).
    rmSync(this.root, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

export interface WorldOptions {
  runtimeParent?: string;
  sharedDownloads?: boolean;
  /** A bridge and subnet of the world's own (VM tests). */
  network?: boolean;
  /** The subnet to use with `network` (default: a random 10.x.y.0/24). */
  subnet?: string;
  /** Run banger (CLI, daemon, QEMU, image builds) as this ordinary user; the world's root helper does the privileged part. */
  user?: TestUser;
  /** Run banger and its helper inside this network namespace (the test creates and removes it). */
  netns?: string;
}

/**
 * World options for the VM e2e suites: as root by default; as the ordinary
 * test user when BANGER_TEST_AS_USER=1 (scripts/run-tests.mjs runs those
 * suites a second time that way), proving banger needs root only in its helper.
 */
/** " (as <user>)" in user mode, for suite names: the two runs of a suite are told apart in the report. */
export function userModeLabel(): string {
  return process.env.BANGER_TEST_AS_USER === '1' ? ` (as the ordinary user ${process.env.BANGER_TEST_USER ?? 'banger-test'})` : '';
}

export function vmWorldOptions(): WorldOptions {
  return process.env.BANGER_TEST_AS_USER === '1' ? { sharedDownloads: true, network: true, user: ensureTestUser() } : { sharedDownloads: true, network: true };
}

/** Hands a world's files to its user (the test, as root, created them). */
function chownTree(path: string, user: TestUser): void {
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, path]);
}

export function collect(child: ChildProcess, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`process timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Re-exported for tests: whether a pid is alive. */
export { pidAlive as processAlive } from '../../src/host/process.js';

/** Polls `predicate` every 25 ms until it holds; throws with `what` after `timeoutMs`. */
export async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
