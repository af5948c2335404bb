import { spawn } from 'node:child_process';

import { shellJoin } from '../guest/shell.js';
import type { VmSshTarget } from '../rpc/methods.js';

/**
 * Runs the system `ssh` into a VM with banger's key and banger's own
 * known_hosts (the user's ~/.ssh is neither read nor written: -F /dev/null).
 * The daemon pinned the guest's host key when the VM booted.
 */

export function sshArgs(target: VmSshTarget, options: { interactive: boolean; tty: boolean; command?: readonly string[] }): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    target.keyPath,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${target.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    // banger pinned the VM's host key before its first boot: never accept another.
    'StrictHostKeyChecking=yes',
    '-o',
    'LogLevel=ERROR',
    ...(options.interactive ? [] : ['-o', 'BatchMode=yes']),
    ...(options.tty ? ['-tt'] : ['-T']),
    `${target.user}@${target.host}`,
    ...(options.command === undefined || options.command.length === 0 ? [] : ['--', shellJoin(options.command)]),
  ];
}

/** Runs ssh with the terminal attached; resolves with its exit status (the guest command's, or 255 for ssh errors). */
export function runSsh(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve(code ?? (signal === null ? 255 : 128 + (signal === 'SIGINT' ? 2 : 15)));
    });
  });
}
