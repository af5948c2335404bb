/** POSIX shell quoting for commands banger sends to a guest. */

/** Quotes one argument for the guest's POSIX shell, so argv reaches the command unchanged. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** argv as one shell command line, each argument quoted. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** Signals banger forwards to guest commands (the names sshd and kill(1) share). */
export const FORWARDED_SIGNALS = ['HUP', 'INT', 'QUIT', 'KILL', 'USR1', 'USR2', 'PIPE', 'ALRM', 'TERM'] as const;
export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

export function isForwardedSignal(name: string): name is ForwardedSignal {
  return (FORWARDED_SIGNALS as readonly string[]).includes(name);
}
