import { ReadStream } from 'node:tty';

import { render, type Instance } from 'ink';

import type { CliContext } from '../cli/context.js';
import { runSsh } from '../cli/guest-ssh.js';
import { App } from './App.js';
import { daemonActions } from './daemon-actions.js';
import { followEvents } from './follow-events.js';
import { TuiStore } from './model.js';

/** The alternate screen, so quitting (or `vm ssh`) gives back the terminal as it was; the cursor is shown again on the way out. */
const ENTER_SCREEN = '\x1b[?1049h\x1b[H';
const LEAVE_SCREEN = '\x1b[?1049l\x1b[?25h';

/**
 * `banger tui`: connects to the daemon (starting it if needed), subscribes
 * to its events, and runs the ink app until `q`, Ctrl-C or SIGTERM. The
 * caller has checked that stdin and stdout are terminals.
 *
 * For `vm ssh` the ink app is unmounted (the store keeps the table, and
 * events keep arriving), the system ssh gets the terminal on the main
 * screen, and a new app is mounted when it exits. Each app reads the
 * terminal through a ReadStream of its own, destroyed when it is unmounted:
 * a stream merely paused would go on reading keys into its buffer, taking
 * them from ssh.
 */
export async function runTui(cli: CliContext): Promise<void> {
  // Before the screen is taken: the connection's notices (daemon started, replaced) go to stderr as usual.
  const client = await cli.daemon();
  const store = new TuiStore();
  let current: { app: Instance; input: ReadStream } | undefined;
  /** The app unmounted to make way for ssh: its exit is not the end. */
  let steppedAside: Instance | undefined;
  let quit = (): void => undefined;
  const quitting = new Promise<void>((resolve) => {
    quit = resolve;
  });

  const unmount = (): void => {
    current?.app.unmount();
    current?.input.destroy();
    current = undefined;
  };
  const runOutsideTui = async (sshArguments: string[]): Promise<number> => {
    steppedAside = current?.app;
    unmount();
    process.stdout.write(LEAVE_SCREEN);
    try {
      return await runSsh(sshArguments);
    } finally {
      if (cli.signal.aborted) quit();
      else {
        process.stdout.write(ENTER_SCREEN);
        mount();
      }
    }
  };
  const actions = daemonActions(cli, client, runOutsideTui, (text) => {
    if (text !== '') store.dispatch({ type: 'status', status: { kind: 'info', text } });
  });
  const mount = (): void => {
    const input = new ReadStream(0);
    const app = render(<App store={store} actions={actions} />, { stdin: input, exitOnCtrlC: true, patchConsole: false });
    current = { app, input };
    void app.waitUntilExit().finally(() => {
      if (app !== steppedAside) quit();
    });
  };

  const subscription = new AbortController();
  const events = followEvents(actions, store, subscription.signal);
  // SIGTERM (and a SIGINT that is not a key press) end the TUI like q does.
  const onTerminate = (): void => {
    if (current === undefined) return; // ssh is running: runOutsideTui quits when it returns
    unmount();
    quit();
  };
  cli.signal.addEventListener('abort', onTerminate, { once: true });
  // However the process ends, the terminal leaves the alternate screen.
  const restoreOnExit = (): void => {
    process.stdout.write(LEAVE_SCREEN);
  };
  process.once('exit', restoreOnExit);
  process.stdout.write(ENTER_SCREEN);
  try {
    mount();
    await quitting;
  } finally {
    cli.signal.removeEventListener('abort', onTerminate);
    unmount();
    process.stdout.write(LEAVE_SCREEN);
    process.off('exit', restoreOnExit);
    subscription.abort();
    await events;
  }
}
