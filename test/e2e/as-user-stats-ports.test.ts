/**
 * The stats, ports and events suite again, with banger (CLI, daemon, QEMU)
 * running as the ordinary test user and only the root helper as root (see
 * vmWorldOptions). Each test file runs in a process of its own.
 */
process.env.BANGER_TEST_AS_USER = '1';
await import('./stats-ports.test.js');
