import assert from 'node:assert/strict';
import { test } from 'node:test';

import { gatewayAddress, slotCapacity, slotNetwork, tapName } from './slot.js';

const config = { bridge: 'banger0', subnet: '172.30.0.0/24' };

test('a slot derives the guest address, gateway, tap and MAC', () => {
  assert.deepEqual(slotNetwork(config, 1), { slot: 1, tap: 'banger0t1', mac: '52:54:ba:00:00:01', guestIp: '172.30.0.2', gatewayIp: '172.30.0.1', prefix: 24 });
  assert.equal(slotNetwork(config, 253).guestIp, '172.30.0.254');
  assert.equal(slotNetwork({ bridge: 'br', subnet: '10.7.0.0/16' }, 300).guestIp, '10.7.1.45');
  assert.equal(slotNetwork({ bridge: 'br', subnet: '10.7.0.0/16' }, 300).mac, '52:54:ba:00:01:2c');
  assert.equal(gatewayAddress(config), '172.30.0.1/24');
});

test('slots stay inside the subnet', () => {
  assert.equal(slotCapacity('172.30.0.0/24'), 253);
  assert.equal(slotCapacity('10.0.0.0/29'), 5);
  assert.throws(() => slotNetwork(config, 254), /does not fit/);
  assert.throws(() => slotNetwork(config, 0), /does not fit/);
});

test('tap names fit IFNAMSIZ (15) even with long bridge names', () => {
  assert.equal(tapName('a-very-long-bridge', 65000), 'a-very-lt65000');
  assert.ok(tapName('a-very-long-bridge', 99999).length <= 15);
});
