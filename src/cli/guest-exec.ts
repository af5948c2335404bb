import { forwardSignals, type CliContext, type ForwardableSignal } from './context.js';

export interface ExecOptions {
  ref: string;
  command: readonly string[];
  /** Force (true) or refuse (false) a terminal; undefined: one when stdin and stdout are terminals. */
  tty: boolean | undefined;
  /** Forward this process's stdin (false: the command reads EOF, like ssh -n). */
  stdin: boolean;
  autoPrepare: boolean;
}

/**
 * Runs a command in a VM through the daemon (vm.exec over a stream, see
 * src/rpc/stream.ts) and returns its exit status. stdin is forwarded with
 * backpressure; with a terminal, the local one goes raw and resizes follow.
 * The first Ctrl-C (or SIGTERM) goes to the guest command; a second one
 * cancels the request, and the daemon kills the command.
 */
export async function execInVm(cli: CliContext, options: ExecOptions): Promise<number> {
  const stdin = process.stdin;
  const tty = options.tty ?? (stdin.isTTY && process.stdout.isTTY);
  const stream = await cli.openStream({ stdout: process.stdout, stderr: process.stderr });

  const forwarded: Record<ForwardableSignal, number> = { INT: 0, TERM: 0 };
  const stopForwarding = forwardSignals((name) => {
    forwarded[name]++;
    if (forwarded[name] > 1) return false;
    stream.signal(name);
    return true;
  });
  const rawMode = tty && stdin.isTTY;
  if (rawMode) stdin.setRawMode(true);
  const onResize = (): void => {
    stream.resize(process.stdout.columns, process.stdout.rows);
  };
  if (tty) process.stdout.on('resize', onResize);

  const onData = (chunk: Buffer): void => {
    if (!stream.stdin(chunk)) {
      stdin.pause();
      void stream.drained().then(() => stdin.resume());
    }
  };
  const onEnd = (): void => {
    stream.endStdin();
  };
  if (options.stdin) {
    stdin.on('data', onData);
    stdin.once('end', onEnd);
  } else {
    stream.endStdin();
  }

  try {
    const result = await cli.callWithProgress('vmExec', {
      ref: options.ref,
      command: [...options.command],
      streamToken: stream.token,
      ...(tty ? { tty: { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24, term: process.env.TERM ?? 'xterm' } } : {}),
      ...(options.autoPrepare ? { autoPrepare: true } : {}),
    });
    await stream.done;
    return result.exitCode;
  } finally {
    stopForwarding();
    process.stdout.off('resize', onResize);
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    if (rawMode) stdin.setRawMode(false);
    // Stop reading: a stdin nobody closes would keep the process alive.
    if (options.stdin) stdin.destroy();
    stream.close();
  }
}
