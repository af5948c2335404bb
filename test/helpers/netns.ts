import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** A network namespace of the test's own: banger's bridge, taps and nftables live there, the host's network is untouched. */
export class TestNetns {
  readonly name: string;

  constructor(prefix = 'bt') {
    this.name = `${prefix}-${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', this.name]);
    this.run('ip', 'link', 'set', 'lo', 'up');
  }

  /** Runs a command inside the namespace and returns its stdout. */
  run(command: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, command, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Like run, but returns undefined instead of throwing on failure. */
  tryRun(command: string, ...args: string[]): string | undefined {
    const result = spawnSync('ip', ['netns', 'exec', this.name, command, ...args], { encoding: 'utf8' });
    return result.status === 0 ? result.stdout : undefined;
  }

  /** Link names in the namespace. */
  links(): string[] {
    return this.run('ip', '-o', 'link', 'show')
      .split('\n')
      .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '')
      .filter((name) => name !== '');
  }

  remove(): void {
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}
