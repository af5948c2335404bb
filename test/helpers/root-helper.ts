import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { HelperPolicy } from '../../src/root-helper/policy.js';
import { helperSocketPath } from '../../src/root-helper/protocol.js';

/** Repo root (this file runs from dist/test/helpers/). */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * A real root helper (dist/root-helper.cjs, as `banger system install` runs
 * it) for one test: its own config and socket directory, optionally inside a
 * network namespace. The test process is root, so the helper is root; the
 * daemon under test connects to it as the test user.
 */
export class TestRootHelper {
  readonly dir: string;
  readonly socketDir: string;
  readonly logPath: string;
  readonly #child: ChildProcess;

  private constructor(dir: string, child: ChildProcess) {
    this.dir = dir;
    this.socketDir = join(dir, 'sock');
    this.logPath = join(dir, 'helper.log');
    this.#child = child;
  }

  static async start(dir: string, policies: HelperPolicy[], options: { netns?: string | undefined } = {}): Promise<TestRootHelper> {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    const config = join(dir, 'root-helper.json');
    writeFileSync(config, JSON.stringify({ users: policies }, null, 2));
    const argv = [
      process.execPath,
      join(REPO_ROOT, 'dist', 'root-helper.cjs'),
      'serve',
      '--config',
      config,
      '--socket-dir',
      join(dir, 'sock'),
      '--log',
      join(dir, 'helper.log'),
    ];
    const command = options.netns === undefined ? argv : ['ip', 'netns', 'exec', options.netns, ...argv];
    const child = spawn(command[0] ?? 'node', command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const helper = new TestRootHelper(dir, child);
    const deadline = Date.now() + 15_000;
    while (!policies.every((p) => existsSync(helper.socketFor(p.uid)))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`root helper did not start: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return helper;
  }

  socketFor(uid: number): string {
    return helperSocketPath(uid, this.socketDir);
  }

  /** The helper's log: one JSON line per operation, with the caller's uid and the outcome. */
  logLines(): Record<string, unknown>[] {
    if (!existsSync(this.logPath)) return [];
    return readFileSync(this.logPath, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGTERM');
    await exited;
  }
}
