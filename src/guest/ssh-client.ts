import { Client } from 'ssh2';

import { BangerError } from '../rpc/errors.js';
import { verifyPinned } from './known-hosts.js';

/**
 * The daemon's SSH to guests (ssh2): connects as root with banger's key and
 * verifies the guest's host key against the one banger pinned for it. Readiness of a VM means this succeeds; the connection then stays open
 * (see GuestConnection). Keepalives notice a guest that vanished.
 */

export interface GuestTarget {
  host: string;
  /** 22 unless a test says otherwise. */
  port?: number | undefined;
  privateKey: Buffer;
  knownHosts: string;
}

/** Parses an ssh wire-format public key blob into its type and base64. */
function hostKeyOf(blob: Buffer): { type: string; key: string } {
  const length = blob.readUInt32BE(0);
  return { type: blob.toString('latin1', 4, 4 + length), key: blob.toString('base64') };
}

export function connectGuest(target: GuestTarget, timeoutMs: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let mismatch: Error | undefined;
    let settled = false;
    client.once('ready', () => {
      settled = true;
      resolve(client);
    });
    // `on`, not `once`: ssh2 can emit a second error for one failed attempt (a socket error, then
    // "Connection lost before handshake"), and an 'error' with no listener kills the daemon.
    client.on('error', (error) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(mismatch ?? error);
    });
    client.connect({
      host: target.host,
      port: target.port ?? 22,
      username: 'root',
      privateKey: target.privateKey,
      readyTimeout: timeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      algorithms: { serverHostKey: ['ssh-ed25519'] },
      hostVerifier: (blob: Buffer) => {
        try {
          return verifyPinned(target.knownHosts, target.host, hostKeyOf(blob));
        } catch (error) {
          mismatch = error instanceof Error ? error : new Error(String(error));
          return false;
        }
      },
    });
  });
}

/**
 * Polls until the guest's sshd answers with a trusted host key, or until
 * `deadlineMs`. `stillBooting` lets the caller stop early, with its error, when the VM died.
 * A host key mismatch ends the wait at once.
 */
export async function waitForSsh(
  target: GuestTarget,
  options: { deadlineMs: number; signal: AbortSignal; stillBooting: () => BangerError | undefined; hint?: string | undefined },
): Promise<Client> {
  const deadline = Date.now() + options.deadlineMs;
  let lastError: unknown;
  for (;;) {
    options.signal.throwIfAborted();
    const died = options.stillBooting();
    if (died !== undefined) throw died;
    try {
      return await connectGuest(target, 3000);
    } catch (error) {
      if (error instanceof BangerError && (error.code === 'ERR_HOST_KEY_MISMATCH' || error.code === 'ERR_HOST_KEY_UNKNOWN')) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new BangerError(
        'ERR_GUEST_SSH',
        `the guest did not answer SSH within ${Math.round(options.deadlineMs / 1000)}s: ${(lastError as Error | undefined)?.message ?? 'no answer'}`,
        { hint: options.hint },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
