import { runDaemon } from './daemon.js';

// bangerd entry point. Normally started by the CLI on demand (detached, with
// stdout/stderr on the daemon log); it can also be run in the foreground.
// Exit explicitly: a half-closed client socket must not keep a stopped daemon alive.
process.exit(await runDaemon());
