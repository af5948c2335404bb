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
