/**
 * The TUI suite again, with banger (the TUI, daemon, QEMU) running as the
 * ordinary test user and only the root helper as root (see vmWorldOptions);
 * tmux itself is the test's. Each test file runs in a process of its own.
 */
process.env.BANGER_TEST_AS_USER = '1';
await import('./tui.test.js');
