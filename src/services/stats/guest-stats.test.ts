import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

import { GUEST_STATS_SCRIPT, parseDf, parseGuestStats } from './guest-stats.js';

const OUTPUT = [
  'MemTotal: 2007452',
  'MemFree: 1700000',
  'MemAvailable: 1851234',
  'Buffers: 10000',
  'Cached: 90000',
  'loadavg 0.52 0.20 0.07 1/98 1234',
  'uptime 3723.45 3600.00',
  '@df',
  'Filesystem     1024-blocks  Used Available Capacity Mounted on',
  '/dev/vdc          8191416  2048   7772232       1% /root',
  '',
].join('\n');

test('parseGuestStats reads memory, load, uptime and the /root disk', () => {
  assert.deepEqual(parseGuestStats(OUTPUT), {
    memTotalBytes: 2007452 * 1024,
    memAvailableBytes: 1851234 * 1024,
    load1: 0.52,
    load5: 0.2,
    load15: 0.07,
    diskTotalBytes: 8191416 * 1024,
    diskUsedBytes: 2048 * 1024,
    uptimeSeconds: 3723,
  });
});

test('without df the disk is null and the rest stands', () => {
  const stats = parseGuestStats(OUTPUT.slice(0, OUTPUT.indexOf('@df') + 4));
  assert.ok(stats !== undefined);
  assert.equal(stats.diskTotalBytes, null);
  assert.equal(stats.diskUsedBytes, null);
  assert.equal(stats.memTotalBytes, 2007452 * 1024);
});

test('a kernel without MemAvailable: free + buffers + cache', () => {
  const stats = parseGuestStats(OUTPUT.replace('MemAvailable: 1851234\n', ''));
  assert.equal(stats?.memAvailableBytes, (1700000 + 10000 + 90000) * 1024);
});

test('garbage, missing or hostile values give no guest sample rather than a wrong one', () => {
  assert.equal(parseGuestStats(''), undefined);
  assert.equal(parseGuestStats('sh: df: not found'), undefined);
  assert.equal(parseGuestStats(OUTPUT.replace('MemTotal: 2007452', 'MemTotal: lots')), undefined);
  assert.equal(parseGuestStats(OUTPUT.replace('loadavg 0.52 0.20 0.07', 'loadavg 0.52')), undefined);
  assert.equal(parseGuestStats(OUTPUT.replace('uptime 3723.45', 'uptime -5')), undefined);
  assert.equal(parseGuestStats(OUTPUT.replace('MemTotal: 2007452', `MemTotal: ${'9'.repeat(40)}`)), undefined);
  // Available beyond total is capped (a guest cannot report more free memory than it has).
  assert.equal(parseGuestStats(OUTPUT.replace('MemAvailable: 1851234', 'MemAvailable: 9999999'))?.memAvailableBytes, 2007452 * 1024);
});

test('parseDf reads the last line from its end (a filesystem name may hold spaces)', () => {
  assert.deepEqual(parseDf('Filesystem 1024-blocks Used Available Capacity Mounted on\nmy disk 100 40 60 40% /\n'), { totalBytes: 102400, usedBytes: 40960 });
  assert.equal(parseDf(''), undefined);
  assert.equal(parseDf('df: /root: No such file or directory'), undefined);
  assert.equal(parseDf('/dev/vdc 100 40 60 forty /root'), undefined);
});

test("the script runs in a POSIX sh and its output parses (this host stands in for a guest's /proc)", () => {
  const output = execFileSync('sh', ['-c', GUEST_STATS_SCRIPT], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  const stats = parseGuestStats(output);
  assert.ok(stats !== undefined, output);
  assert.ok(stats.memTotalBytes > 0 && stats.memAvailableBytes <= stats.memTotalBytes);
  assert.ok(stats.uptimeSeconds > 0);
});
