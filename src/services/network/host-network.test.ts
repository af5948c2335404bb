import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { pino } from 'pino';

import type { HostNetState } from '../../root-helper/host-net.js';
import { PrivilegedOps } from '../../root-helper/privileged-ops.js';
import { HostNetwork } from './host-network.js';

/** The helper as a recording fake with a host state (unit test; test/integration/root-helper.test.ts and the e2e suites use the real one). */
class FakeOps extends PrivilegedOps {
  readonly mode: PrivilegedOps['mode'] = 'in-process';
  readonly calls: string[] = [];
  host: HostNetState = { taps: [], natGuests: [] };

  protected call(op: string, args: Record<string, unknown>): Promise<unknown> {
    this.calls.push(`${op} ${JSON.stringify(args)}`);
    if (op === 'state') return Promise.resolve(this.host);
    return Promise.resolve(null);
  }
}

const settings = { bridge: 'banger0', subnet: '172.30.0.0/24', dnsPort: 42069, tapPool: 1 };
const uid = process.getuid?.() ?? 0;

function network(ops: PrivilegedOps): HostNetwork {
  return new HostNetwork({ ops, settings, uid, log: pino({ level: 'silent' }) });
}

describe('host network', { timeout: 10_000 }, () => {
  test('reconcile keeps and re-binds live taps, adopts a leftover into the pool (unbound, then made whole: on the bridge and up), deletes the rest, and fixes NAT both ways', async () => {
    const ops = new FakeOps();
    ops.host = {
      taps: ['banger0p0', 'banger0p1', 'banger0p2'],
      natGuests: ['172.30.0.2', '172.30.0.9'],
    };
    const net = network(ops);
    await net.reconcile([
      { tap: 'banger0p0', guestIp: '172.30.0.3', mac: '52:54:ba:00:00:02', nat: true, network: 'isolated' },
      { tap: 'banger0p9', guestIp: '172.30.0.2', mac: '52:54:ba:00:00:01', nat: false, network: 'shared' },
    ]);
    assert.deepEqual(net.pool.status(), { size: 1, idle: ['banger0p1'], inUse: ['banger0p0', 'banger0p9'] });
    assert.deepEqual(
      ops.calls.filter((c) => !c.startsWith('state')),
      [
        'tap.release {"tap":"banger0p1"}',
        `tap.create {"tap":"banger0p1","uid":${uid}}`,
        'tap.delete {"tap":"banger0p2"}',
        'nat.set {"guestIp":"172.30.0.2","enabled":false}',
        'nat.set {"guestIp":"172.30.0.9","enabled":false}',
        'tap.attach {"tap":"banger0p0","guestIp":"172.30.0.3","mac":"52:54:ba:00:00:02","network":"isolated"}',
        'forwarding.enable {}',
        'nat.set {"guestIp":"172.30.0.3","enabled":true}',
        'tap.attach {"tap":"banger0p9","guestIp":"172.30.0.2","mac":"52:54:ba:00:00:01","network":"shared"}',
      ],
    );
  });

  test('detach removes NAT by address even without a tap, and returns a known tap to the pool', async () => {
    const ops = new FakeOps();
    const net = network(ops);
    await net.detach('172.30.0.5', undefined);
    await net.detach('172.30.0.6', 'banger0p4');
    assert.deepEqual(ops.calls, [
      'nat.set {"guestIp":"172.30.0.5","enabled":false}',
      'nat.set {"guestIp":"172.30.0.6","enabled":false}',
      'tap.release {"tap":"banger0p4"}',
    ]);
    assert.deepEqual(net.pool.status().idle, ['banger0p4']);
  });

  test('in helper mode, a helper of another build is refused before anything changes', async () => {
    const ops = new (class extends FakeOps {
      override readonly mode: PrivilegedOps['mode'] = 'helper';
      protected override call(op: string, args: Record<string, unknown>): Promise<unknown> {
        if (op === 'hello') return Promise.resolve({ version: '0', buildId: 'another-build', uid, bridge: 'banger0', subnet: '172.30.0.0/24' });
        return super.call(op, args);
      }
    })();
    await assert.rejects(network(ops).ensureReady(), /ERR_HELPER_MISMATCH|root helper is build another-build/);
    assert.deepEqual(ops.calls, []);
  });
});
