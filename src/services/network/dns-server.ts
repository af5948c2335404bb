import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP, isIPv4 } from 'node:net';

import { AUTHORITATIVE_ANSWER, decode, encode, RECURSION_AVAILABLE, RECURSION_DESIRED, type Answer, type DecodedPacket, type Question } from 'dns-packet';
import type { Logger } from 'pino';

import { BangerError, hasErrnoCode } from '../../rpc/errors.js';
import { KeyedLock } from '../keyed-lock.js';

/** What the server needs to know about VMs; the daemon answers from its live state. */
export interface DnsDirectory {
  /** IPv4 address of the live VM called `name` (the label before ".vm", lowercase), or undefined. */
  resolve(name: string): string | undefined;
  /** Whether a query from `source` (an IPv4) may be forwarded to the host's resolvers: true only for a VM with NAT on. */
  mayForward(source: string): boolean;
}

export interface VmDnsServerOptions {
  directory: DnsDirectory;
  /** The host's resolvers ("ip" or "ip:port"), read when a forward happens (so resolv.conf changes apply). Only IPv4 ones are used. */
  upstreams: () => readonly string[];
  log: Logger;
  /** How long to wait for each upstream before trying the next. */
  forwardTimeoutMs?: number;
}

/** Every `.vm` answer is short-lived: VMs come and go, and a stale address points at someone else's VM. */
const VM_TTL_SECONDS = 5;
/** Larger datagrams are dropped unread; clients advertise at most this much with EDNS in practice. */
const MAX_QUERY_BYTES = 4096;
const DEFAULT_FORWARD_TIMEOUT_MS = 2_000;
/** Each forward holds a socket (one fd) until it is answered or times out; past this, queries are dropped and clients retry. */
const MAX_PENDING_FORWARDS = 256;
const DNS_PORT = 53;
const OPCODE_QUERY = 0;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

interface Endpoint {
  address: string;
  port: number;
}

/**
 * The DNS server guests use (their resolv.conf points at the bridge's
 * gateway address). It is authoritative for `.vm`: `<name>.vm` is the live
 * VM called name, everything else under `.vm` does not exist. Other names are
 * relayed verbatim to the host's resolvers, but only for sources the
 * directory allows (VMs with NAT): a VM without NAT has no route out, and
 * DNS must not become a side channel around that.
 *
 * UDP only: there is no TCP listener, so an upstream answer with the TC bit
 * cannot be retried by the guest. Guests' EDNS buffer size travels in the
 * relayed query, so upstreams rarely truncate.
 *
 * One socket per listening address; queries are answered on the socket they
 * arrived on. No query's failure reaches the caller: it is logged, and the
 * client gets SERVFAIL or nothing (then it retries).
 */
export class VmDnsServer {
  readonly #directory: DnsDirectory;
  readonly #upstreams: () => readonly string[];
  readonly #log: Logger;
  readonly #forwardTimeoutMs: number;
  readonly #listeners = new Map<string, { socket: Socket; port: number }>();
  /** Per-address serialisation of listen/unlisten. */
  readonly #lock = new KeyedLock();
  /** Every address listen() was called with, so close() also catches a listen still binding. */
  readonly #addresses = new Set<string>();
  /** Settles an in-flight upstream exchange (with no answer), so close() can cut them short. */
  readonly #pending = new Set<(reply: Buffer | undefined) => void>();

  constructor(options: VmDnsServerOptions) {
    this.#directory = options.directory;
    this.#upstreams = options.upstreams;
    this.#log = options.log;
    this.#forwardTimeoutMs = options.forwardTimeoutMs ?? DEFAULT_FORWARD_TIMEOUT_MS;
  }

  /**
   * Binds a UDP socket on an IPv4 address and returns its port (port 0 picks
   * a free one). Calling it again for a bound address with port 0 or the same
   * port returns that port; with another port it moves the address there.
   */
  listen(address: string, port: number): Promise<number> {
    if (!isIPv4(address)) return Promise.reject(new Error(`VmDnsServer.listen: ${address} is not an IPv4 address`));
    this.#addresses.add(address);
    return this.#lock.run(address, async () => {
      const current = this.#listeners.get(address);
      if (current !== undefined && (port === 0 || port === current.port)) return current.port;
      const socket = createSocket('udp4');
      const bound = await bindSocket(socket, address, port);
      socket.on('error', (error) => {
        this.#log.warn({ err: error, address, port: bound }, 'dns: socket error');
      });
      socket.on('message', (message, from) => {
        this.#onMessage(socket, message, from);
      });
      this.#listeners.set(address, { socket, port: bound });
      if (current !== undefined) await closeSocket(current.socket);
      this.#log.info({ address, port: bound }, 'dns: listening');
      return bound;
    });
  }

  /** Closes the socket on `address`, if any. */
  unlisten(address: string): Promise<void> {
    return this.#lock.run(address, async () => {
      const current = this.#listeners.get(address);
      if (current === undefined) return;
      this.#listeners.delete(address);
      await closeSocket(current.socket);
      this.#log.info({ address, port: current.port }, 'dns: stopped listening');
    });
  }

  /** Abandons in-flight forwards and closes every socket. The server may listen again afterwards. */
  async close(): Promise<void> {
    for (const settle of [...this.#pending]) settle(undefined);
    const addresses = [...this.#addresses];
    this.#addresses.clear();
    await Promise.all(addresses.map((address) => this.unlisten(address)));
  }

  #onMessage(socket: Socket, message: Buffer, from: RemoteInfo): void {
    this.#answer(message, from.address).then(
      (reply) => {
        if (reply !== undefined) this.#send(socket, reply, from);
      },
      (error: unknown) => {
        this.#log.warn({ err: error, source: from.address }, 'dns: query failed');
      },
    );
  }

  /** The reply to one datagram, or undefined to stay silent. */
  async #answer(message: Buffer, source: string): Promise<Buffer | undefined> {
    if (message.length > MAX_QUERY_BYTES) {
      this.#log.debug({ source, bytes: message.length }, 'dns: oversized datagram dropped');
      return undefined;
    }
    let query: DecodedPacket;
    try {
      query = decode(message);
    } catch (error) {
      this.#log.debug({ err: error, source }, 'dns: malformed datagram dropped');
      return undefined;
    }
    if (query.flag_qr) {
      this.#log.debug({ source }, 'dns: response sent to the server dropped');
      return undefined;
    }
    const questions = query.questions ?? [];
    const question = questions[0];
    try {
      const opcode = (message.readUInt8(2) >> 3) & 0x0f;
      if (opcode !== OPCODE_QUERY) return reply(query, opcode, undefined, RCODE.NOTIMP);
      if (question === undefined) return reply(query, opcode, undefined, RCODE.FORMERR);
      // Nobody sends several questions in practice (servers disagree on what it means); the first one is answered and echoed.
      if (questions.length > 1) this.#log.debug({ source, questions: questions.length }, 'dns: only the first question answered');
      const name = lowerAscii(question.name).replace(/\.$/, '');
      if (name === 'vm' || name.endsWith('.vm')) return this.#answerVm(query, question, name.slice(0, -'.vm'.length), source);
      if (!this.#directory.mayForward(source)) return reply(query, opcode, question, RCODE.REFUSED);
      if (this.#pending.size >= MAX_PENDING_FORWARDS) {
        this.#log.warn({ source, pending: this.#pending.size }, 'dns: too many forwards in flight, query dropped');
        return undefined;
      }
      return (await this.#forward(message, query.id ?? 0)) ?? reply(query, opcode, question, RCODE.SERVFAIL, { recursive: true });
    } catch (error) {
      this.#log.warn({ err: error, source, name: question?.name }, 'dns: query failed');
      return reply(query, OPCODE_QUERY, question, RCODE.SERVFAIL);
    }
  }

  /** `label` is what precedes ".vm" (empty for "vm" itself; containing dots for nested names, which never exist). */
  #answerVm(query: DecodedPacket, question: Question, label: string, source: string): Buffer {
    const address = label === '' || label.includes('.') ? undefined : this.#directory.resolve(label);
    const recursive = this.#directory.mayForward(source);
    if (address === undefined) return reply(query, OPCODE_QUERY, question, RCODE.NXDOMAIN, { authoritative: true, recursive });
    const type: string = question.type;
    const answers: Answer[] = type === 'A' || type === 'ANY' ? [{ type: 'A', class: 'IN', name: question.name, ttl: VM_TTL_SECONDS, data: address }] : [];
    return reply(query, OPCODE_QUERY, question, RCODE.NOERROR, { authoritative: true, recursive, answers });
  }

  /** Asks each upstream in turn; the first answer is returned as received. Never asks one of our own sockets. */
  async #forward(query: Buffer, id: number): Promise<Buffer | undefined> {
    for (const text of this.#upstreams()) {
      const upstream = parseUpstream(text);
      if (upstream === undefined) {
        this.#log.debug({ upstream: text }, 'dns: upstream skipped (not an IPv4 address)');
        continue;
      }
      if (this.#isOwn(upstream)) {
        this.#log.debug({ upstream: text }, 'dns: upstream skipped (it is this server)');
        continue;
      }
      const answer = await this.#ask(upstream, query, id);
      if (answer !== undefined) return answer;
    }
    return undefined;
  }

  #isOwn(target: Endpoint): boolean {
    for (const [address, { port }] of this.#listeners) {
      if (port === target.port && (address === target.address || address === '0.0.0.0')) return true;
    }
    return false;
  }

  /**
   * One exchange with one upstream on a fresh socket (a random source port
   * per query). The socket is connected, so an upstream that is down answers
   * with ICMP port unreachable and we move on at once instead of waiting out
   * the timeout.
   */
  #ask(upstream: Endpoint, query: Buffer, id: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const socket = createSocket('udp4');
      const settle = (answer: Buffer | undefined): void => {
        if (!this.#pending.delete(settle)) return;
        clearTimeout(timer);
        socket.close();
        resolve(answer);
      };
      this.#pending.add(settle);
      const timer = setTimeout(() => {
        this.#log.debug({ upstream }, 'dns: upstream timed out');
        settle(undefined);
      }, this.#forwardTimeoutMs);
      const fail = (error: Error): void => {
        this.#log.debug({ err: error, upstream }, 'dns: upstream failed');
        settle(undefined);
      };
      socket.on('error', fail);
      socket.on('message', (answer, from) => {
        if (from.address === upstream.address && from.port === upstream.port && isResponseTo(answer, id)) settle(answer);
        else this.#log.debug({ upstream, from: from.address }, 'dns: unrelated upstream datagram ignored');
      });
      socket.connect(upstream.port, upstream.address, () => {
        if (!this.#pending.has(settle)) return;
        socket.send(query, (error) => {
          if (error !== null) fail(error);
        });
      });
    });
  }

  #send(socket: Socket, data: Buffer, to: RemoteInfo): void {
    try {
      socket.send(data, to.port, to.address, (error) => {
        if (error !== null) this.#log.debug({ err: error, to: to.address }, 'dns: reply not sent');
      });
    } catch (error) {
      // The socket closed while the answer was being worked out.
      this.#log.debug({ err: error, to: to.address }, 'dns: reply not sent');
    }
  }
}

/** A response to `query` echoing its id, opcode, RD bit and (first) question. */
function reply(
  query: DecodedPacket,
  opcode: number,
  question: Question | undefined,
  rcode: number,
  options: { authoritative?: boolean; recursive?: boolean; answers?: Answer[] } = {},
): Buffer {
  let flags = (opcode << 11) | rcode;
  if (query.flag_rd) flags |= RECURSION_DESIRED;
  if (options.authoritative === true) flags |= AUTHORITATIVE_ANSWER;
  if (options.recursive === true) flags |= RECURSION_AVAILABLE;
  return encode({ type: 'response', id: query.id ?? 0, flags, questions: question === undefined ? [] : [question], answers: options.answers ?? [] });
}

function isResponseTo(answer: Buffer, id: number): boolean {
  return answer.length >= 12 && answer.readUInt16BE(0) === id && (answer.readUInt8(2) & 0x80) !== 0;
}

/** DNS names compare case-insensitively in ASCII only (toLowerCase would also fold non-ASCII letters). */
function lowerAscii(text: string): string {
  return text.replace(/[A-Z]/g, (letter) => String.fromCharCode(letter.charCodeAt(0) + 32));
}

/** "a.b.c.d" or "a.b.c.d:port"; anything else (IPv6, names, the unspecified address) is not used for forwarding. */
function parseUpstream(text: string): Endpoint | undefined {
  const match = /^([0-9.]+)(?::([0-9]{1,5}))?$/.exec(text.trim());
  const address = match?.[1];
  if (address === undefined || !isIPv4(address) || address === '0.0.0.0') return undefined;
  const port = match?.[2] === undefined ? DNS_PORT : Number(match[2]);
  return port >= 1 && port <= 65_535 ? { address, port } : undefined;
}

function bindSocket(socket: Socket, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      socket.off('listening', onListening);
      void closeSocket(socket);
      reject(bindError(error, address, port));
    };
    const onListening = (): void => {
      socket.off('error', onError);
      resolve(socket.address().port);
    };
    socket.once('error', onError);
    socket.once('listening', onListening);
    socket.bind({ address, port });
  });
}

function bindError(error: Error, address: string, port: number): Error {
  const configurable = 'the port is set by `dns_port` in the [network] table of config.toml';
  if (hasErrnoCode(error, 'EADDRINUSE')) {
    return new BangerError('ERR_DNS_PORT_IN_USE', `DNS port ${address}:${port} is already in use`, {
      cause: error,
      hint: `another program is bound to it, perhaps another bangerd (check with \`ss -ulpn 'sport = :${port}'\`); ${configurable}`,
    });
  }
  if (hasErrnoCode(error, 'EACCES')) {
    return new BangerError('ERR_NEEDS_ROOT', `binding DNS port ${address}:${port} needs privileges`, {
      cause: error,
      hint: `ports below 1024 need root or CAP_NET_BIND_SERVICE; ${configurable}`,
    });
  }
  return error;
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => {
        resolve();
      });
    } catch {
      resolve(); // already closed
    }
  });
}

/**
 * The nameservers listed in resolv.conf text, in order, without duplicates.
 * Lines starting with "#" or ";" are comments; IPv6 addresses (with an
 * optional %zone) are kept, anything that is not an IP address is skipped.
 */
export function parseResolvConf(text: string): string[] {
  const servers: string[] = [];
  for (const line of text.split('\n')) {
    const uncommented = line.replace(/[#;].*$/, '');
    const [keyword, address] = uncommented.trim().split(/\s+/);
    if (keyword !== 'nameserver' || address === undefined) continue;
    if (isIP(address.replace(/%.*$/, '')) === 0 || servers.includes(address)) continue;
    servers.push(address);
  }
  return servers;
}
