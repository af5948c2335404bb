import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ABSOLUTE_PATH, DISK_SIZE_BYTES, IMAGE_NAME, INIT_MODE, MEMORY_MIB, NETWORK_MODE, REF, STREAM_TOKEN, VCPU, VM_NAME } from './schemas.js';
import { describeValue, sentence, type Checked } from './validation.js';

const GiB = 1024 ** 3;

function value<T>(checked: Checked<T>): T {
  assert.ok(checked.ok, checked.ok ? '' : checked.problem.detail);
  return checked.value;
}

function detail(checked: Checked<unknown>): string {
  assert.ok(!checked.ok, 'expected a rejection');
  return checked.problem.detail;
}

test('vcpu: integers 1-64; as text, plain decimal digits only', () => {
  assert.equal(value(VCPU.check(1)), 1);
  assert.equal(value(VCPU.check(64)), 64);
  assert.equal(value(VCPU.parse('8')), 8);
  for (const bad of [0, 65, 1.5, -1, '2', null, true]) assert.equal(detail(VCPU.check(bad)), `must be an integer from 1 to 64, got ${describeValue(bad)}`);
  // Number() would take all of these.
  for (const bad of ['0x2', '1e1', ' 2', '2 ', '', '+2', '0b10', '2.0']) assert.match(detail(VCPU.parse(bad)), /^must be an integer from 1 to 64, got "/);
});

test('memory: MiB 128 to 1 TiB, as a number or a size that is whole MiB', () => {
  assert.equal(value(MEMORY_MIB.check(128)), 128);
  assert.equal(value(MEMORY_MIB.parse('2048')), 2048);
  assert.equal(value(MEMORY_MIB.parse('2G')), 2048);
  assert.equal(value(MEMORY_MIB.parse('512MiB')), 512);
  assert.equal(value(MEMORY_MIB.parse('1T')), 1024 * 1024);
  for (const bad of ['0', '-1', '1.5', 'abc', '127', '2T', '1536K', '0x100', '1e3', '']) {
    assert.match(detail(MEMORY_MIB.parse(bad)), /^must be MiB from 128 to 1048576 .*, got "/, bad);
  }
  // On the wire it is MiB as a number; "2G" is for people.
  assert.ok(!MEMORY_MIB.check('2G').ok);
  assert.ok(!MEMORY_MIB.check(2 * 1024 * 1024).ok);
});

test('disk: 1G to 8T; as text a size with a unit, never a bare number', () => {
  assert.equal(value(DISK_SIZE_BYTES.parse('8G')), 8 * GiB);
  assert.equal(value(DISK_SIZE_BYTES.parse('8T')), 8 * 1024 * GiB);
  assert.equal(value(DISK_SIZE_BYTES.check(GiB)), GiB);
  for (const bad of ['8', '512M', '9T', '999999T', '1.5G', '-1G', 'big'])
    assert.match(detail(DISK_SIZE_BYTES.parse(bad)), /^must be a size from 1G to 8T, got "/);
  assert.equal(detail(DISK_SIZE_BYTES.check(GiB - 1)), `must be a size from 1G to 8T in bytes, got ${GiB - 1}`);
});

test('modes are fixed lists', () => {
  assert.equal(value(INIT_MODE.check('systemd')), 'systemd');
  assert.equal(detail(INIT_MODE.check('openrc')), 'must be one of minimal, systemd, got "openrc"');
  assert.equal(detail(NETWORK_MODE.check('bridged')), 'must be one of isolated, shared, got "bridged"');
});

test('VM names are DNS labels; image and kernel names may have dots', () => {
  for (const good of ['a', 'box-1', 'x'.repeat(63), '0']) assert.equal(value(VM_NAME.check(good)), good);
  for (const bad of ['', 'Box', 'x'.repeat(64), '-box', 'box-', 'b_x', 'bøx', '../x', 'a b', 'a;b', 'a.b']) {
    const checked = VM_NAME.check(bad);
    assert.ok(!checked.ok);
    assert.equal(sentence(checked.problem, 'ignored'), `${describeValue(bad)} is not a valid VM name`);
    assert.match(checked.problem.hint ?? '', /lowercase letters, digits and dashes/);
  }
  assert.equal(value(IMAGE_NAME.check('debian-12.4')), 'debian-12.4');
  assert.ok(!IMAGE_NAME.check('.hidden').ok);
});

test('refs: what a name or id (or a prefix of one) can look like, nothing else', () => {
  for (const good of ['b', 'box', '0123abcd', 'debian-bookworm-cloud', 'a.b']) assert.equal(value(REF.check(good)), good);
  for (const bad of ['', 'Box', '../x', '/etc/passwd', '-x', 'a b', 'x'.repeat(64), 7]) assert.ok(!REF.check(bad).ok, String(bad));
});

test('absolute paths: starting with /, no control characters, at most PATH_MAX', () => {
  assert.equal(value(ABSOLUTE_PATH.check('/tmp/x')), '/tmp/x');
  for (const bad of ['tmp/x', '', '/tmp/a\0b', '/tmp/a\nb', `/${'x'.repeat(4095)}`]) assert.ok(!ABSOLUTE_PATH.check(bad).ok);
});

test('stream tokens are 32 hex digits', () => {
  assert.ok(STREAM_TOKEN.check('0123456789abcdef0123456789abcdef').ok);
  assert.ok(!STREAM_TOKEN.check('xyz').ok);
});

test('messages quote values safely and never at length', () => {
  const huge = 'a'.repeat(10 * 1024 * 1024);
  const text = detail(VM_NAME.check(huge));
  assert.ok(text.length < 200, `message of ${text.length} characters`);
  assert.match(text, /\(10485760 characters\)/);
  // Control characters are escaped, not sent raw to a terminal.
  assert.equal(describeValue('a\u001b[2Jb'), '"a\\u001b[2Jb"');
});
