import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

import type { Logger } from 'pino';

import { parseSubnet, subnetsOverlap } from '../host/ipv4.js';
import { toBangerError } from '../rpc/errors.js';
import { executeOperation } from './operations.js';
import { nftTableName, refused, tapIndex, tapPrefix, validatePolicy, type HelperPolicy } from './policy.js';
import { helperSocketPath, lineReader, type HelperRequest, type HelperResponse } from './protocol.js';

/**
 * The root helper's service: one unix socket per allowed user, owned by that
 * user with mode 0600, in a root-owned 0755 directory. The kernel's
 * permission check on connect() is the authentication: a connection on
 * `<uid>.sock` comes from that uid (or from root), so the policy applied is
 * the one installed for that socket, whatever the request says. Operations
 * run one at a time, each logged with the caller's uid, its arguments and
 * its outcome.
 */

export interface HelperConfig {
  users: HelperPolicy[];
}

/** Reads and checks the helper's config: each policy valid, uids unique, bridges' taps and subnets disjoint. */
export function loadHelperConfig(path: string): HelperConfig {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<HelperConfig>;
  const users = parsed.users;
  if (!Array.isArray(users)) throw refused(`${path}: expected {"users": [...]}`);
  checkPolicies(users);
  return { users };
}

export function checkPolicies(users: readonly HelperPolicy[]): void {
  users.forEach(validatePolicy);
  for (const [i, a] of users.entries()) {
    for (const b of users.slice(i + 1)) {
      if (a.uid === b.uid) throw refused(`uid ${a.uid} appears twice in the helper config`);
      if (tapPrefix(a.bridge) === tapPrefix(b.bridge)) {
        throw refused(`bridges ${a.bridge} and ${b.bridge} share their first 8 characters (tap names would clash)`);
      }
      if (nftTableName(a.bridge) === nftTableName(b.bridge)) throw refused(`bridges ${a.bridge} and ${b.bridge} would share banger's nftables tables`);
      if (tapIndex(a.bridge, b.bridge) !== undefined || tapIndex(b.bridge, a.bridge) !== undefined) {
        throw refused(`bridges ${a.bridge} and ${b.bridge}: one is named like a tap of the other`);
      }
      const sa = parseSubnet(a.subnet);
      const sb = parseSubnet(b.subnet);
      if (sa !== undefined && sb !== undefined && subnetsOverlap(sa, sb)) throw refused(`subnets ${a.subnet} and ${b.subnet} overlap`);
    }
  }
}

export class HelperServer {
  readonly #servers: { server: Server; path: string }[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #log: Logger;
  /** Operations run one at a time: two `ip link add` of one name must not race. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(log: Logger) {
    this.#log = log;
  }

  async listen(config: HelperConfig, socketDir: string): Promise<void> {
    mkdirSync(socketDir, { recursive: true, mode: 0o755 });
    chmodSync(socketDir, 0o755);
    for (const policy of config.users) {
      const path = helperSocketPath(policy.uid, socketDir);
      rmSync(path, { force: true });
      const server = createServer((socket) => {
        this.#serve(socket, policy);
      });
      // A daemon needs one connection; a few spare for doctor and tools. More only cost the helper.
      server.maxConnections = 16;
      // Born 0600 (umask) and root's, then handed to its user: never open to anyone else.
      const previous = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(path, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } finally {
        process.umask(previous);
      }
      chownSync(path, policy.uid, policy.gid);
      chmodSync(path, 0o600);
      this.#servers.push({ server, path });
      this.#log.info({ uid: policy.uid, bridge: policy.bridge, subnet: policy.subnet, socket: path }, 'serving user');
    }
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all(
      this.#servers.map(
        ({ server, path }) =>
          new Promise<void>((resolve) => {
            server.close(() => {
              rmSync(path, { force: true });
              resolve();
            });
          }),
      ),
    );
    this.#servers.length = 0;
  }

  #serve(socket: Socket, policy: HelperPolicy): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on(
      'data',
      lineReader(
        (line) => {
          // One request at a time per connection: the socket is read again once this one is answered.
          socket.pause();
          this.#queue = this.#queue
            .then(() => this.#handle(socket, policy, line))
            .catch((error: unknown) => {
              this.#log.error({ uid: policy.uid, err_message: error instanceof Error ? error.message : String(error) }, 'request handling failed');
              socket.destroy();
            })
            .finally(() => socket.resume());
        },
        () => {
          this.#log.warn({ uid: policy.uid }, 'request line too long: connection closed');
          socket.destroy();
        },
      ),
    );
  }

  async #handle(socket: Socket, policy: HelperPolicy, line: string): Promise<void> {
    const started = Date.now();
    let request: Partial<HelperRequest>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      request = parsed;
    } catch {
      this.#log.warn({ uid: policy.uid }, 'malformed request: connection closed');
      socket.destroy();
      return;
    }
    const id = typeof request.id === 'number' ? request.id : 0;
    let response: HelperResponse;
    try {
      const result = await executeOperation(policy, request.op, request.args);
      response = { id, result: result ?? null };
      this.#log.info({ uid: policy.uid, op: request.op, args: request.args, ms: Date.now() - started }, 'done');
    } catch (thrown) {
      const error = toBangerError(thrown);
      response = { id, error: { code: error.code, message: error.message, hint: error.hint } };
      this.#log.warn({ uid: policy.uid, op: request.op, args: request.args, code: error.code, err_message: error.message }, 'refused or failed');
    }
    if (!socket.destroyed) socket.write(JSON.stringify(response) + '\n');
  }
}
