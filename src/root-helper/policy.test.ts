import assert from 'node:assert/strict';
import { test } from 'node:test';

import { checkPolicies } from './server.js';
import { nftTableName, tapIndex, tapName } from './policy.js';

test('tap names carry the bridge (cut to 8 characters) and fit IFNAMSIZ', () => {
  assert.equal(tapName('banger0', 0), 'banger0p0');
  assert.equal(tapName('a-very-long-bridge', 99_999), 'a-very-lp99999');
  assert.ok(tapName('a-very-long-bridge', 99_999).length <= 15);
  assert.equal(tapIndex('banger0', 'banger0p12'), 12);
  assert.equal(tapIndex('banger0', 'banger0p012'), undefined);
  assert.equal(tapIndex('banger0', 'banger1p1'), undefined);
});

test('nftables table names are identifiers whatever the bridge name', () => {
  assert.equal(nftTableName('br-banger.1'), 'banger_br_banger_1');
});

test('the helper config refuses users whose bridges or subnets would clash', () => {
  const a = { uid: 1000, gid: 1000, bridge: 'banger0', subnet: '172.30.0.0/24' };
  checkPolicies([a, { uid: 1001, gid: 1001, bridge: 'banger1', subnet: '172.30.1.0/24' }]);
  assert.throws(() => {
    checkPolicies([a, { ...a }]);
  }, /uid 1000 appears twice/);
  assert.throws(() => {
    checkPolicies([a, { uid: 1001, gid: 1001, bridge: 'banger0', subnet: '172.30.1.0/24' }]);
  }, /share their first 8 characters/);
  assert.throws(() => {
    checkPolicies([
      { ...a, bridge: 'longbridge1' },
      { uid: 1001, gid: 1001, bridge: 'longbridge2', subnet: '172.30.1.0/24' },
    ]);
  }, /share their first 8 characters/);
  assert.throws(() => {
    checkPolicies([a, { uid: 1001, gid: 1001, bridge: 'other', subnet: '172.30.0.0/16' }]);
  }, /overlap/);
  assert.throws(() => {
    checkPolicies([{ ...a, bridge: 'bad name' }]);
  }, /not a valid interface name/);
  assert.throws(() => {
    checkPolicies([{ ...a, subnet: '172.30.0.0/8' }]);
  }, /not a \/16 to \/29/);
});
