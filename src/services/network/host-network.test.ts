import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';

import { HostNetwork, linkExists } from './host-network.js';

/** Real bridge and tap (needs root, as CI runs); names are unique and removed afterwards. */
const bridge = `bnt${randomBytes(2).toString('hex')}`;
const network = new HostNetwork({ bridge, subnet: '10.251.7.0/24' });
after(() => {
  for (const link of [`${bridge}t1`, bridge]) {
    try {
      execFileSync('ip', ['link', 'del', link], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

test('concurrent ensureBridge calls share one setup and leave one bridge with the gateway address', async () => {
  await Promise.all([network.ensureBridge(), network.ensureBridge(), network.ensureBridge()]);
  assert.equal(await linkExists(bridge), true);
  const addresses = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge], { encoding: 'utf8' });
  assert.equal(addresses.match(/inet 10\.251\.7\.1\/24/g)?.length, 1);
  await network.ensureBridge(); // idempotent afterwards too
});

test('a tap is created on the bridge, replaced if stale, and deleted idempotently', async () => {
  const tap = `${bridge}t1`;
  await network.createTap(tap);
  assert.match(execFileSync('ip', ['-o', 'link', 'show', 'dev', tap], { encoding: 'utf8' }), new RegExp(`master ${bridge}`));
  await network.createTap(tap);
  await network.deleteTap(tap);
  assert.equal(await linkExists(tap), false);
  await network.deleteTap(tap);
});
