import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { runCommand } from '../host/command.js';
import { BangerError } from '../rpc/errors.js';

/** Key generations in progress, by path: concurrent first uses (two creates at once) share one. */
const generating = new Map<string, Promise<void>>();

/**
 * banger's own SSH key for reaching guests (ed25519, in the state dir, 0600),
 * generated on first use. The user's ~/.ssh is never read or written.
 */
export async function ensureSshKey(keyPath: string): Promise<{ privateKey: Buffer; publicKey: string }> {
  if (!existsSync(keyPath)) {
    let generation = generating.get(keyPath);
    if (generation === undefined) {
      mkdirSync(dirname(keyPath), { recursive: true, mode: 0o700 });
      generation = runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'banger', '-f', keyPath]).finally(() => generating.delete(keyPath));
      generating.set(keyPath, generation);
    }
    await generation;
  }
  const publicKey = readFileSync(`${keyPath}.pub`, 'utf8').trim();
  if (!publicKey.startsWith('ssh-ed25519 ')) {
    throw new BangerError('ERR_GUEST_SSH', `${keyPath}.pub is not an ed25519 public key`, {
      hint: `remove ${keyPath} and ${keyPath}.pub to have banger make a new key`,
    });
  }
  return { privateKey: readFileSync(keyPath), publicKey };
}

/** A fresh ed25519 host key pair for one VM (written to its upper disk). */
export async function generateHostKey(path: string, comment: string): Promise<void> {
  await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}
