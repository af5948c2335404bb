import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { DEFAULT_GUEST_PATH, validateGuestPath } from './guest-path.js';

test('guest paths: under /root, plain characters, normalised', () => {
  assert.equal(validateGuestPath(DEFAULT_GUEST_PATH), '/root/repo');
  assert.equal(validateGuestPath('/root/src/app-1.2_x+y@z/'), '/root/src/app-1.2_x+y@z');
  for (const [bad, why] of [
    ['repo', /not absolute/],
    ['/tmp/repo', /outside \/root/],
    ['/rootx/repo', /outside \/root/],
    ['/root', /\/root itself/],
    ['/root/', /\/root itself/],
    ['/root/../etc', /"\.\."/],
    ['/root//repo', /empty/],
    ['/root/a b', /not allowed/],
    ['/root/$(reboot)', /not allowed/],
    ["/root/it's", /not allowed/],
    ['/root/a;b', /not allowed/],
    ['/root/a\nb', /not allowed/],
    ['/root/-rf', /starting with "-"/],
    ['/root/.banger-staging-x', /\.banger- prefix/],
  ] as const) {
    assert.throws(
      () => validateGuestPath(bad),
      (error: unknown) =>
        error instanceof BangerError && error.code === 'ERR_GUEST_PATH_INVALID' && why.test(error.message) && (error.hint ?? '').includes('/root'),
      bad,
    );
  }
});
