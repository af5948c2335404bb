import assert from 'node:assert/strict';
import { test } from 'node:test';

import { slotCapacity, slotNetwork, slotOfAddress } from './slot.js';

const config = { bridge: 'banger0', subnet: '172.30.0.0/24' };

test('a slot derives the guest address, gateway and MAC', () => {
  assert.deepEqual(slotNetwork(config, 1), { slot: 1, mac: '52:54:ba:00:00:01', guestIp: '172.30.0.2', gatewayIp: '172.30.0.1', prefix: 24 });
  assert.equal(slotNetwork(config, 253).guestIp, '172.30.0.254');
  assert.equal(slotNetwork({ bridge: 'br', subnet: '10.7.0.0/16' }, 300).guestIp, '10.7.1.45');
  assert.equal(slotNetwork({ bridge: 'br', subnet: '10.7.0.0/16' }, 300).mac, '52:54:ba:00:01:2c');
});

test('slots stay inside the subnet', () => {
  assert.equal(slotCapacity('172.30.0.0/24'), 253);
  assert.equal(slotCapacity('10.0.0.0/29'), 5);
  assert.throws(() => slotNetwork(config, 254), /does not fit/);
  assert.throws(() => slotNetwork(config, 0), /does not fit/);
});

test('an address maps back to its slot, and only guest addresses do', () => {
  assert.equal(slotOfAddress(config, '172.30.0.2'), 1);
  assert.equal(slotOfAddress(config, '172.30.0.254'), 253);
  assert.equal(slotOfAddress(config, '172.30.0.1'), undefined);
  assert.equal(slotOfAddress(config, '172.30.0.255'), undefined);
  assert.equal(slotOfAddress(config, '172.30.1.2'), undefined);
  assert.equal(slotOfAddress(config, '127.0.0.1'), undefined);
});
