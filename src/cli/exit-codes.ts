/**
 * Exit statuses of `banger`. Usage errors and failures are distinct so
 * scripts can tell "you called it wrong" from "it did not work". Commands
 * that run a guest command (`vm run`, `vm exec`) pass that command's own
 * status through verbatim instead.
 */
export const EXIT_OK = 0;
/** The operation failed (a BangerError or an unexpected error). */
export const EXIT_FAILURE = 1;
/** Bad command line: unknown command or option, missing or invalid argument. */
export const EXIT_USAGE = 2;
/** Interrupted by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;
/** `banger daemon status`: bangerd is not running (the LSB status code for a stopped service). */
export const EXIT_NOT_RUNNING = 3;

/** The exit-status paragraph of `banger --help`; commands that differ add their own. */
export const EXIT_STATUS_HELP = `Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C);
\`vm run\` and \`vm exec\` pass the guest command's own status through; \`daemon status\` exits 3 when bangerd is not running.`;

/** The exit-status paragraph of the commands that run a guest command. */
export const GUEST_EXIT_STATUS_HELP = `Exit status: the guest command's own status (128 + N when signal N ended it);
1 when banger itself failed before the command ran, 2 for a usage error, 130 when interrupted (Ctrl-C twice).`;
