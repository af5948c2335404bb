import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { OPERATIONS, prepareOperation } from './operations.js';
import type { HelperPolicy } from './policy.js';

/**
 * The allow-list, checked without touching the host: prepareOperation runs
 * every check and returns the action without running it. The e2e helper
 * test (test/e2e/root-helper.test.ts) runs the actions for real.
 */
const policy: HelperPolicy = { uid: 1234, gid: 1234, bridge: 'banger0', subnet: '172.30.0.0/24' };

/** One valid request per operation. */
const VALID: Record<string, Record<string, unknown>> = {
  hello: {},
  'bridge.ensure': { bridge: 'banger0', dnsPort: 42069 },
  'bridge.delete': { bridge: 'banger0' },
  'tap.create': { tap: 'banger0p0', uid: 1234 },
  'tap.delete': { tap: 'banger0p17' },
  'tap.attach': { tap: 'banger0p3', guestIp: '172.30.0.4', mac: '52:54:ba:00:00:03', network: 'shared' },
  'tap.release': { tap: 'banger0p3' },
  'nat.set': { guestIp: '172.30.0.2', enabled: true },
  'forwarding.enable': {},
  'resolver.route': { bridge: 'banger0', dnsPort: 5353 },
  'resolver.revert': { bridge: 'banger0' },
  state: {},
};

function refusal(op: unknown, args: unknown): string {
  try {
    prepareOperation(policy, op, args);
  } catch (error) {
    assert.ok(error instanceof BangerError, `expected a BangerError, got ${String(error)}`);
    assert.equal(error.code, 'ERR_HELPER_REFUSED');
    return error.message;
  }
  assert.fail(`${String(op)} ${JSON.stringify(args)} was accepted`);
}

describe('root helper allow-list', { timeout: 10_000 }, () => {
  test('every operation has a valid form, and it is accepted', () => {
    assert.deepEqual(Object.keys(VALID).sort(), Object.keys(OPERATIONS).sort(), 'the test covers every operation');
    for (const [op, args] of Object.entries(VALID)) assert.equal(typeof prepareOperation(policy, op, args), 'function', op);
  });

  test('unknown operations, and arguments that are missing, extra or not an object, are refused', () => {
    assert.match(refusal('exec', { command: 'sh' }), /unknown operation "exec"/);
    assert.match(refusal('__proto__', {}), /unknown operation/);
    assert.match(refusal('toString', {}), /unknown operation/);
    assert.match(refusal(42, {}), /unknown operation 42/);
    assert.match(refusal('tap.create', { tap: 'banger0p0' }), /missing argument uid/);
    assert.match(refusal('tap.create', { tap: 'banger0p0', uid: 1234, mode: 'tun' }), /unknown argument mode/);
    assert.match(refusal('hello', []), /arguments must be an object/);
    assert.match(refusal('hello', null), /arguments must be an object/);
  });

  test('foreign bridges and taps are refused', () => {
    assert.match(refusal('bridge.ensure', { bridge: 'docker0', dnsPort: 42069 }), /bridge "docker0" is not yours/);
    assert.match(refusal('bridge.delete', { bridge: 'eth0' }), /not yours/);
    assert.match(refusal('resolver.route', { bridge: 'lo', dnsPort: 42069 }), /not yours/);
    for (const tap of ['eth0', 'banger0', 'banger0t1', 'otherbrp1', 'banger0p', 'banger0p01', 'banger0p-1', 'banger0p100000', 'banger0p1 ', 7]) {
      assert.match(refusal('tap.delete', { tap }), /is not a tap of banger0/, String(tap));
    }
  });

  test('addresses outside the subnet, and its network, gateway and broadcast addresses, are refused', () => {
    for (const guestIp of ['10.0.0.2', '172.30.1.2', '172.30.0.0', '172.30.0.1', '172.30.0.255', '172.30.0.02', '172.30.0.2/32', '::1', 1]) {
      assert.match(refusal('nat.set', { guestIp, enabled: true }), /is not a guest address in 172\.30\.0\.0\/24/, String(guestIp));
    }
    assert.match(refusal('nat.set', { guestIp: '172.30.0.2', enabled: 'yes' }), /enabled must be true or false/);
  });

  test("another uid than the caller's is refused", () => {
    assert.match(refusal('tap.create', { tap: 'banger0p0', uid: 0 }), /uid 0 is not the caller's \(1234\)/);
    assert.match(refusal('tap.create', { tap: 'banger0p0', uid: '1234' }), /is not the caller's/);
  });

  test('shell metacharacters and over-long names never pass', () => {
    for (const hostile of ['banger0;reboot', 'banger0p1;rm -rf /', '$(id)', 'banger0p1`id`', 'banger0p1\nx', 'banger0p1 && true', 'a'.repeat(300)]) {
      assert.match(refusal('tap.create', { tap: hostile, uid: 1234 }), /is not a tap of banger0/);
      assert.match(refusal('bridge.ensure', { bridge: hostile, dnsPort: 42069 }), /is not yours/);
      assert.match(refusal('nat.set', { guestIp: hostile, enabled: true }), /is not a guest address/);
      assert.match(
        refusal('tap.attach', { tap: 'banger0p1', guestIp: '172.30.0.4', mac: '52:54:ba:00:00:03', network: hostile }),
        /network .* must be one of isolated, shared/,
      );
      assert.match(refusal('tap.attach', { tap: 'banger0p1', guestIp: '172.30.0.4', mac: hostile, network: 'shared' }), /not a banger guest MAC/);
    }
    assert.ok(refusal('tap.delete', { tap: 'x'.repeat(300) }).length < 200, 'refusals quote values cut short');
  });

  test('ports must be unprivileged', () => {
    for (const dnsPort of [53, 0, 65536, 1023.5, '42069']) assert.match(refusal('bridge.ensure', { bridge: 'banger0', dnsPort }), /unprivileged port/);
  });
});
