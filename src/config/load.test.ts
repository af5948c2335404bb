import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { loadConfig } from './load.js';
import { defaultConfig } from './schema.js';

const root = mkdtempSync(join(tmpdir(), 'banger-config-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

test('a missing config file means defaults', () => {
  assert.deepEqual(loadConfig(join(root, 'absent.toml'), '/home/u'), defaultConfig());
});

test('a config file is read and parsed', () => {
  const path = join(root, 'config.toml');
  writeFileSync(path, '[vm_defaults]\nvcpu = 3\n');
  assert.equal(loadConfig(path, '/home/u').vmDefaults.vcpu, 3);
});

test('errors name the file', () => {
  const path = join(root, 'bad.toml');
  writeFileSync(path, 'nope = 1\n');
  assert.throws(
    () => loadConfig(path, '/home/u'),
    (error: unknown) => error instanceof BangerError && error.code === 'ERR_CONFIG_INVALID' && error.message === `${path}: unknown key "nope"`,
  );
});

test('a directory where the file should be is a read error, not defaults', () => {
  assert.throws(
    () => loadConfig(root, '/home/u'),
    (error: unknown) => error instanceof BangerError && error.message.includes('cannot read'),
  );
});
