import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import * as dnsPacket from 'dns-packet';

import { BangerWorld } from './harness.js';

/** The daemon's DNS on loopback: a busy port stops start-up with a clear error (and nothing left behind); then it answers. */
describe('daemon DNS', { timeout: 60_000 }, () => {
  let world: BangerWorld;
  let port: number;
  before(() => {
    world = new BangerWorld();
    port = Number(/dns_port = (\d+)/.exec(readFileSync(world.layout.configFile, 'utf8'))?.[1]);
  });
  after(() => {
    world.close();
  });

  function query(name: string): Promise<dnsPacket.DecodedPacket & { rcode?: string }> {
    return new Promise((resolve, reject) => {
      const socket: Socket = createSocket('udp4');
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`no DNS answer for ${name}`));
      }, 5000);
      socket.on('message', (message) => {
        clearTimeout(timer);
        socket.close();
        resolve(dnsPacket.decode(message));
      });
      socket.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), port, '127.0.0.1');
    });
  }

  test('a busy DNS port stops the daemon with ERR_DNS_PORT_IN_USE and a hint naming the setting', async () => {
    const squatter = createSocket('udp4');
    await new Promise<void>((resolve) => squatter.bind(port, '127.0.0.1', resolve));
    try {
      const result = await world.run(['daemon', 'start']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /error\[ERR_DNS_PORT_IN_USE\]/);
      assert.match(result.stderr, /dns_port/);
      assert.deepEqual(world.daemonPids(), [], 'no daemon came up');
    } finally {
      squatter.close();
    }
  });

  test('then the daemon starts and answers: NXDOMAIN for an unknown .vm name, REFUSED for the outside from the host', async () => {
    assert.equal((await world.run(['daemon', 'start'])).code, 0);
    const missing = await query('nosuch.vm');
    assert.equal(missing.rcode, 'NXDOMAIN');
    assert.equal(missing.id, 7);
    const outside = await query('example.com');
    assert.equal(outside.rcode, 'REFUSED', 'only guests with NAT may resolve beyond .vm');
    assert.equal((await world.run(['daemon', 'stop'])).code, 0);
    // Stopped: the port is free again (the listener did not outlive the daemon).
    const probe = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind(port, '127.0.0.1', resolve);
    });
    probe.close();
  });
});
