import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { cpuPercent, parseProcStat, parseStatusRss, parseUptime } from './vmm-proc.js';

// Fields 3-22 of /proc/<pid>/stat after the command name: utime (14) = 700, stime (15) = 300, starttime (22) = 5000.
const STAT_TAIL = 'S 1 1 1 0 -1 4194560 100 0 0 0 700 300 0 0 20 0 3 0 5000 3133440 412 18446744073709551615';

test('parseProcStat counts fields after the last parenthesis, so a command name with spaces and parens is fine', () => {
  assert.deepEqual(parseProcStat(`4242 (qemu-system-x86) ${STAT_TAIL}`), { cpuTicks: 1000, startTicks: 5000 });
  assert.deepEqual(parseProcStat(`4242 (a b) (c)) ${STAT_TAIL}`), { cpuTicks: 1000, startTicks: 5000 });
});

test('parseProcStat refuses text that is not a stat line', () => {
  assert.equal(parseProcStat(''), undefined);
  assert.equal(parseProcStat('4242 qemu S 1 1'), undefined);
  assert.equal(parseProcStat('4242 (qemu) S 1 1 0'), undefined);
  assert.equal(parseProcStat(`4242 (qemu) ${STAT_TAIL.replace('700', '-7')}`), undefined);
});

test("parseProcStat reads this process's own /proc/self/stat", () => {
  const cpu = parseProcStat(readFileSync('/proc/self/stat', 'utf8'));
  assert.ok(cpu !== undefined);
  assert.ok(cpu.startTicks > 0);
});

test('parseStatusRss takes VmRSS in kB as bytes', () => {
  assert.equal(parseStatusRss('Name:\tqemu\nVmPeak:\t  999 kB\nVmRSS:\t  354816 kB\nThreads:\t5\n'), 354816 * 1024);
  assert.equal(parseStatusRss('Name:\tkthread\nThreads:\t1\n'), undefined, 'kernel threads have no VmRSS');
  const own = parseStatusRss(readFileSync('/proc/self/status', 'utf8'));
  assert.ok(own !== undefined && own > 0);
});

test('parseUptime takes the first number', () => {
  assert.equal(parseUptime('12345.67 23456.78\n'), 12345.67);
  assert.equal(parseUptime('soon'), undefined);
  assert.equal(parseUptime(''), undefined);
});

test('cpuPercent: ticks used over the time since the previous reading of the same pid', () => {
  // 150 ticks at 100/s = 1.5 s of CPU over 3 s: 50%.
  const previous = { pid: 7, cpuTicks: 1000, atSeconds: 100 };
  assert.equal(cpuPercent({ pid: 7, cpu: { cpuTicks: 1150, startTicks: 0 }, uptimeSeconds: 103 }, previous, 100), 50);
  // Two host CPUs busy: 200%.
  assert.equal(cpuPercent({ pid: 7, cpu: { cpuTicks: 1600, startTicks: 0 }, uptimeSeconds: 103 }, previous, 100), 200);
  // Rounded to 0.1.
  assert.equal(cpuPercent({ pid: 7, cpu: { cpuTicks: 1001, startTicks: 0 }, uptimeSeconds: 103 }, previous, 100), 0.3);
});

test('cpuPercent: without a previous reading (or for a new pid), the average since the process started', () => {
  // Started 10 s after boot (1000 ticks), now at 30 s, 500 ticks used: 5 s of 20 s = 25%.
  const current = { pid: 8, cpu: { cpuTicks: 500, startTicks: 1000 }, uptimeSeconds: 30 };
  assert.equal(cpuPercent(current, undefined, 100), 25);
  assert.equal(cpuPercent(current, { pid: 7, cpuTicks: 100, atSeconds: 29 }, 100), 25, 'a restarted VM has a new VMM pid');
});

test('cpuPercent is never negative and 0 over an empty interval', () => {
  assert.equal(cpuPercent({ pid: 7, cpu: { cpuTicks: 1000, startTicks: 0 }, uptimeSeconds: 100 }, { pid: 7, cpuTicks: 1000, atSeconds: 100 }, 100), 0);
  // Ticks going backwards (a different process under a reused pid): the average since its start instead.
  assert.equal(cpuPercent({ pid: 7, cpu: { cpuTicks: 100, startTicks: 9000 }, uptimeSeconds: 100 }, { pid: 7, cpuTicks: 5000, atSeconds: 99 }, 100), 10);
  assert.equal(cpuPercent({ pid: 7, cpu: { cpuTicks: 100, startTicks: 0 }, uptimeSeconds: 1 }, undefined, 0), 0);
});
