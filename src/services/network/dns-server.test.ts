import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { describe, test } from 'node:test';

import { decode, encode, RECURSION_DESIRED, type DecodedPacket, type Packet, type Question } from 'dns-packet';
import { pino } from 'pino';

import { BangerError } from '../../rpc/errors.js';
import { parseResolvConf, VmDnsServer, type DnsDirectory } from './dns-server.js';

const HOST = '127.0.0.1';

/** A directory with one live VM, "web", and forwarding allowed for the sources in `forward`; records who asked. */
function directory(forward: boolean): DnsDirectory & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    resolve: (name) => (name === 'web' ? '10.77.0.5' : undefined),
    mayForward: (source) => {
      asked.push(source);
      return forward;
    },
  };
}

async function startServer(
  options: { forward?: boolean; upstreams?: readonly string[]; forwardTimeoutMs?: number } = {},
): Promise<{ server: VmDnsServer; port: number; dir: ReturnType<typeof directory> }> {
  const dir = directory(options.forward ?? false);
  const server = new VmDnsServer({
    directory: dir,
    upstreams: () => options.upstreams ?? [],
    log: pino({ level: 'silent' }),
    forwardTimeoutMs: options.forwardTimeoutMs ?? 200,
  });
  const port = await server.listen(HOST, 0);
  return { server, port, dir };
}

async function openSocket(): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  return socket;
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.close(() => {
      resolve();
    });
  });
}

/** Sends `datagrams` in order from one client socket and returns the first reply (raw), or undefined after `waitMs`. */
async function exchange(port: number, datagrams: Buffer[], waitMs = 2_000): Promise<Buffer | undefined> {
  const socket = await openSocket();
  try {
    return await new Promise<Buffer | undefined>((resolve) => {
      const timer = setTimeout(() => {
        resolve(undefined);
      }, waitMs);
      socket.once('message', (message) => {
        clearTimeout(timer);
        resolve(message);
      });
      for (const datagram of datagrams) socket.send(datagram, port, HOST);
    });
  } finally {
    await closeSocket(socket);
  }
}

let nextId = 1;
function query(name: string, type: Question['type'] = 'A', extra: Partial<Packet> = {}): Buffer {
  return encode({ type: 'query', id: nextId++, flags: RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...extra });
}

async function ask(port: number, packet: Buffer): Promise<DecodedPacket & { rcode?: string }> {
  const reply = await exchange(port, [packet]);
  assert.ok(reply, 'the server answered');
  const decoded: DecodedPacket & { rcode?: string } = decode(reply);
  assert.equal(decoded.id, packet.readUInt16BE(0), 'the reply carries the query id');
  assert.equal(decoded.flag_qr, true);
  assert.equal(decoded.flag_rd, true, 'RD is echoed');
  return decoded;
}

/** A fake upstream resolver on 127.0.0.1 that hands every query to `onQuery`. */
async function fakeUpstream(onQuery: (socket: Socket, query: Buffer, from: RemoteInfo) => void): Promise<{ socket: Socket; address: string; seen: Buffer[] }> {
  const socket = await openSocket();
  const seen: Buffer[] = [];
  socket.on('message', (message, from) => {
    seen.push(message);
    onQuery(socket, message, from);
  });
  return { socket, address: `${HOST}:${socket.address().port}`, seen };
}

function upstreamAnswer(queryBytes: Buffer, id = queryBytes.readUInt16BE(0)): Buffer {
  const asked = decode(queryBytes);
  return encode({
    type: 'response',
    id,
    flags: RECURSION_DESIRED | (1 << 7),
    questions: asked.questions ?? [],
    answers: [{ type: 'A', name: asked.questions?.[0]?.name ?? '', ttl: 300, data: '93.184.216.34' }],
  });
}

describe('VmDnsServer', { timeout: 10_000 }, () => {
  test('answers A for a live VM, case-insensitively and with or without a trailing dot, keeping the asked case', async () => {
    const { server, port } = await startServer();
    try {
      for (const name of ['web.vm', 'WeB.Vm', 'web.vm.']) {
        const reply = await ask(port, query(name));
        assert.equal(reply.rcode, 'NOERROR');
        assert.equal(reply.flag_aa, true);
        assert.deepEqual(reply.answers, [{ name: name.replace(/\.$/, ''), type: 'A', class: 'IN', ttl: 5, flush: false, data: '10.77.0.5' }]);
      }
      const any = await ask(port, query('web.vm', 'ANY' as Question['type']));
      assert.equal(any.answers?.[0]?.type, 'A', 'ANY is answered like A');
    } finally {
      await server.close();
    }
  });

  test('other types for a live VM get NODATA; other names under .vm get NXDOMAIN; both authoritative', async () => {
    const { server, port } = await startServer();
    try {
      for (const type of ['AAAA', 'MX', 'TXT'] as const) {
        const reply = await ask(port, query('web.vm', type));
        assert.equal(reply.rcode, 'NOERROR', type);
        assert.equal(reply.flag_aa, true, type);
        assert.deepEqual(reply.answers, [], type);
      }
      for (const name of ['nope.vm', 'a.web.vm', 'vm', 'VM.']) {
        const reply = await ask(port, query(name));
        assert.equal(reply.rcode, 'NXDOMAIN', name);
        assert.equal(reply.flag_aa, true, name);
        assert.deepEqual(reply.answers, [], name);
      }
    } finally {
      await server.close();
    }
  });

  test('with several questions, the first is answered and echoed alone', async () => {
    const { server, port } = await startServer();
    try {
      const packet = encode({
        type: 'query',
        id: 4242,
        flags: RECURSION_DESIRED,
        questions: [
          { type: 'A', name: 'web.vm' },
          { type: 'A', name: 'nope.vm' },
        ],
      });
      const reply = await ask(port, packet);
      assert.equal(reply.rcode, 'NOERROR');
      assert.deepEqual(
        reply.questions?.map((q) => q.name),
        ['web.vm'],
      );
      assert.equal(reply.answers?.length, 1);
    } finally {
      await server.close();
    }
  });

  test('malformed datagrams and responses are dropped silently; the server still answers afterwards', async () => {
    const { server, port } = await startServer();
    try {
      const truncated = query('web.vm').subarray(0, 16); // a header promising a question that is cut off
      const response = encode({ type: 'response', id: 9, questions: [{ type: 'A', name: 'web.vm' }] });
      assert.equal(await exchange(port, [Buffer.from([1, 2, 3]), truncated, response, Buffer.alloc(5000)], 300), undefined);
      const reply = await ask(port, query('web.vm'));
      assert.equal(reply.answers?.length, 1);
    } finally {
      await server.close();
    }
  });

  test('names outside .vm are REFUSED to a source that may not forward, and no upstream is asked', async () => {
    const upstream = await fakeUpstream(() => undefined);
    const { server, port, dir } = await startServer({ forward: false, upstreams: [upstream.address] });
    try {
      const reply = await ask(port, query('example.com'));
      assert.equal(reply.rcode, 'REFUSED');
      assert.deepEqual(dir.asked, [HOST], 'the directory is asked about the datagram source');
      assert.equal(upstream.seen.length, 0);
    } finally {
      await server.close();
      await closeSocket(upstream.socket);
    }
  });

  test('a forward relays the query bytes and the matching upstream answer unchanged, ignoring a reply with the wrong id', async () => {
    const upstream = await fakeUpstream((socket, bytes, from) => {
      socket.send(upstreamAnswer(bytes, bytes.readUInt16BE(0) ^ 0xffff), from.port, from.address);
      socket.send(upstreamAnswer(bytes), from.port, from.address);
    });
    const { server, port } = await startServer({ forward: true, upstreams: [upstream.address] });
    try {
      const packet = query('Example.COM', 'A', {
        additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
      });
      const reply = await exchange(port, [packet]);
      assert.deepEqual(upstream.seen, [packet], 'the upstream got the query as sent, EDNS and all');
      assert.deepEqual(reply, upstreamAnswer(packet), 'the client got the upstream answer byte for byte');
    } finally {
      await server.close();
      await closeSocket(upstream.socket);
    }
  });

  test('an upstream that refuses or is unusable is skipped at once; the next one answers', async () => {
    const gone = await openSocket();
    const goneAddress = `${HOST}:${gone.address().port}`;
    await closeSocket(gone); // nothing listens there now: ICMP port unreachable
    const upstream = await fakeUpstream((socket, bytes, from) => {
      socket.send(upstreamAnswer(bytes), from.port, from.address);
    });
    const { server, port } = await startServer({ forward: true, upstreams: ['::1', 'dns.example', goneAddress, upstream.address], forwardTimeoutMs: 5_000 });
    try {
      const started = Date.now();
      const reply = await ask(port, query('example.com'));
      assert.equal(reply.rcode, 'NOERROR');
      assert.equal(reply.answers?.length, 1);
      assert.ok(Date.now() - started < 2_000, 'the refusing upstream did not cost a timeout');
    } finally {
      await server.close();
      await closeSocket(upstream.socket);
    }
  });

  test('SERVFAIL when no upstream answers in time, and when the only upstream is the server itself', async () => {
    const silent = await fakeUpstream(() => undefined);
    const { server, port } = await startServer({ forward: true, upstreams: [silent.address, silent.address], forwardTimeoutMs: 100 });
    try {
      const reply = await ask(port, query('example.com'));
      assert.equal(reply.rcode, 'SERVFAIL');
      assert.equal(silent.seen.length, 2, 'each upstream was tried in turn');
    } finally {
      await server.close();
      await closeSocket(silent.socket);
    }

    let ownPort = 0;
    const looped = new VmDnsServer({
      directory: directory(true),
      upstreams: () => [`${HOST}:${ownPort}`],
      log: pino({ level: 'silent' }),
      forwardTimeoutMs: 5_000,
    });
    ownPort = await looped.listen(HOST, 0);
    try {
      const started = Date.now();
      const reply = await ask(ownPort, query('example.com'));
      assert.equal(reply.rcode, 'SERVFAIL');
      assert.ok(Date.now() - started < 2_000, 'the server did not ask itself');
    } finally {
      await looped.close();
    }
  });

  test('close() while a forward is in flight returns promptly', async () => {
    const silent = await fakeUpstream(() => undefined);
    const { server, port } = await startServer({ forward: true, upstreams: [silent.address], forwardTimeoutMs: 60_000 });
    try {
      const client = await openSocket();
      client.send(query('example.com'), port, HOST);
      while (silent.seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      await server.close();
      await closeSocket(client);
    } finally {
      await closeSocket(silent.socket);
    }
  });

  test('listen is idempotent per address, reports a busy port as ERR_DNS_PORT_IN_USE, and frees the port on unlisten', async () => {
    const { server, port } = await startServer();
    const other = new VmDnsServer({ directory: directory(false), upstreams: () => [], log: pino({ level: 'silent' }) });
    try {
      assert.equal(await server.listen(HOST, 0), port);
      assert.equal(await server.listen(HOST, port), port);
      await assert.rejects(other.listen(HOST, port), (error: unknown) => {
        assert.ok(error instanceof BangerError);
        assert.equal(error.code, 'ERR_DNS_PORT_IN_USE');
        assert.match(error.hint ?? '', /dns_port/);
        assert.match(error.hint ?? '', /\[network\]/);
        assert.match(error.hint ?? '', /bangerd/);
        return true;
      });
      await server.unlisten(HOST);
      await server.unlisten(HOST);
      assert.equal(await other.listen(HOST, port), port, 'the port is free again');
    } finally {
      await server.close();
      await other.close();
    }
  });

  test('close() is idempotent, also on a server that never listened, and catches a listen still binding', async () => {
    const never = new VmDnsServer({ directory: directory(false), upstreams: () => [], log: pino({ level: 'silent' }) });
    await never.close();
    await never.close();
    const { server, port } = await startServer();
    await server.close();
    await server.close();
    const binding = server.listen(HOST, 0);
    await server.close();
    const latePort = await binding;
    assert.equal(await exchange(port, [query('web.vm')], 200), undefined, 'nothing answers after close');
    assert.equal(await exchange(latePort, [query('web.vm')], 200), undefined, 'a listen still binding when close() came is closed too');
  });
});

describe('parseResolvConf', () => {
  test('lists nameservers in order, skipping comments, other keywords, garbage and duplicates', () => {
    const text = [
      '# Generated by NetworkManager',
      'search lan',
      'nameserver 192.168.1.1',
      '; nameserver 10.0.0.1',
      '#nameserver 10.0.0.2',
      'nameserver\t1.1.1.1   # cloudflare',
      'nameserver 2606:4700:4700::1111',
      'nameserver fe80::1%eth0',
      'nameserver not-an-ip',
      'nameserver',
      'nameserver 192.168.1.1',
      'options edns0 trust-ad',
      '  nameserver 9.9.9.9',
      '',
    ].join('\n');
    assert.deepEqual(parseResolvConf(text), ['192.168.1.1', '1.1.1.1', '2606:4700:4700::1111', 'fe80::1%eth0', '9.9.9.9']);
  });

  test('empty or nameserver-less text gives no servers', () => {
    assert.deepEqual(parseResolvConf(''), []);
    assert.deepEqual(parseResolvConf('search example.com\noptions ndots:2\n'), []);
  });
});
