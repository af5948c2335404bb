import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { followLog, formatLogLine, readLogTail } from './log-view.js';

const root = mkdtempSync(join(tmpdir(), 'banger-logview-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

test('log lines render as time, level, op, method, message and extra fields', () => {
  const line = JSON.stringify({
    level: 'warn',
    time: '2026-01-01T00:00:00.000Z',
    pid: 1,
    op_id: 'op_1',
    method: 'vm.start',
    code: 'ERR_X',
    msg: 'request failed',
  });
  assert.equal(formatLogLine(line), '2026-01-01T00:00:00.000Z WARN  op_1 vm.start request failed code=ERR_X');
  assert.equal(formatLogLine('not json at all'), 'not json at all');
});

test('readLogTail returns the last lines and the size they end at', () => {
  const path = join(root, 'tail.log');
  writeFileSync(path, Array.from({ length: 10 }, (_, i) => `line ${i}`).join('\n') + '\n');
  const { lines, size } = readLogTail(path, 3);
  assert.deepEqual(lines, ['line 7', 'line 8', 'line 9']);
  assert.equal(size, 70);
  assert.deepEqual(readLogTail(join(root, 'missing.log'), 5), { lines: [], size: 0 });
});

test('followLog prints only complete lines appended after the offset', async () => {
  const path = join(root, 'follow.log');
  writeFileSync(path, 'old\n');
  const seen: string[] = [];
  const controller = new AbortController();
  const following = followLog(path, 4, (line) => seen.push(line), controller.signal);
  const until = async (count: number): Promise<void> => {
    for (let i = 0; i < 400 && seen.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 25));
  };
  appendFileSync(path, 'new 1\nnew ');
  await until(1);
  assert.deepEqual(seen, ['new 1'], 'the partial line waits for its newline');
  appendFileSync(path, '2\n');
  await until(2);
  controller.abort();
  await following;
  assert.deepEqual(seen, ['new 1', 'new 2']);
});
