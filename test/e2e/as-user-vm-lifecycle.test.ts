/**
 * The vm-lifecycle suite again, with banger (CLI, daemon, QEMU, image builds) running
 * as the ordinary test user and only the root helper as root: the harness
 * reads BANGER_TEST_AS_USER when each world is made (see vmWorldOptions).
 * Each test file runs in a process of its own, so this does not leak.
 */
process.env.BANGER_TEST_AS_USER = '1';
await import('./vm-lifecycle.test.js');
