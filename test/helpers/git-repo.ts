import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Real git repos in temp dirs, for workspace tests (unit and e2e). */

const IDENTITY = ['-c', 'user.name=Banger Test', '-c', 'user.email=test@banger.invalid', '-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false'];

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', [...IDENTITY, ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class TestRepo {
  readonly root: string;

  constructor(prefix = 'banger-repo-') {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    // Readable by the ordinary user banger runs as in user-mode e2e runs.
    chmodSync(this.root, 0o755);
    git(this.root, 'init', '-q');
  }

  write(path: string, content: string | Buffer, mode?: number): this {
    const full = join(this.root, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    if (mode !== undefined) chmodSync(full, mode);
    return this;
  }

  symlink(path: string, target: string): this {
    const full = join(this.root, path);
    mkdirSync(dirname(full), { recursive: true });
    symlinkSync(target, full);
    return this;
  }

  commit(message = 'commit'): string {
    git(this.root, 'add', '-A');
    git(this.root, 'commit', '-q', '-m', message);
    return this.head();
  }

  head(): string {
    return git(this.root, 'rev-parse', 'HEAD').trim();
  }

  git(...args: string[]): string {
    return git(this.root, ...args);
  }

  /** `git ls-files -z` (plus options) as a list. */
  lsFiles(...options: string[]): string[] {
    return git(this.root, 'ls-files', '-z', ...options)
      .split('\0')
      .filter((p) => p !== '');
  }

  /**
   * Replaces the index with entries git itself would refuse to write (`..`,
   * `.git` inside a tree): a crafted index, as a hostile repo could carry.
   * Every entry points at the blob `blobOf`.
   */
  craftIndex(paths: readonly string[], blobOf: string): void {
    const blob = Buffer.from(git(this.root, 'rev-parse', blobOf).trim(), 'hex');
    const entries = [...paths].sort().map((path) => {
      const name = Buffer.from(path, 'utf8');
      const fixed = Buffer.alloc(62);
      fixed.writeUInt32BE(0o100644, 24);
      blob.copy(fixed, 40);
      fixed.writeUInt16BE(Math.min(name.length, 0xfff), 60);
      const entry = Buffer.concat([fixed, name]);
      return Buffer.concat([entry, Buffer.alloc(8 - (entry.length % 8))]);
    });
    const header = Buffer.alloc(12);
    header.write('DIRC', 0, 'latin1');
    header.writeUInt32BE(2, 4);
    header.writeUInt32BE(entries.length, 8);
    const body = Buffer.concat([header, ...entries]);
    writeFileSync(join(this.root, '.git', 'index'), Buffer.concat([body, createHash('sha1').update(body).digest()]));
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
