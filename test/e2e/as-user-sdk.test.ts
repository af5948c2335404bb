/**
 * The SDK suite again, with banger (the SDK's caller, daemon, QEMU) running as
 * the ordinary test user and only the root helper as root (see
 * vmWorldOptions). Each test file runs in a process of its own.
 */
process.env.BANGER_TEST_AS_USER = '1';
await import('./sdk.test.js');
