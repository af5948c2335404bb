import type { Writable } from 'node:stream';

import { currentPathEnv, resolveLayout, type Layout, type PathEnv } from '../config/paths.js';
import type { RpcClient } from '../rpc/client.js';
import type { MethodKey, ParamsOf, ResultOf } from '../rpc/methods.js';
import { BangerError } from '../rpc/errors.js';
import { connectDaemon, type DaemonConnection } from './daemon-connection.js';
import { Output } from './output.js';
import { ProgressRenderer } from './render/progress.js';
import { StreamClient } from './stream-client.js';

/**
 * What a command's action gets: the output sink for the global flags, the
 * resolved layout, a way to reach the daemon, and an AbortSignal that fires
 * on Ctrl-C (aborting cancels the in-flight RPC on the daemon side too).
 */
export interface CliContext {
  out: Output;
  pathEnv: PathEnv;
  layout: Layout;
  signal: AbortSignal;
  /** The daemon, started (or replaced if stale) on demand. */
  daemon: () => Promise<RpcClient>;
  /** The daemon if it is running; never starts one. */
  runningDaemon: () => Promise<DaemonConnection | undefined>;
  /** Calls a method on the daemon, cancelled by Ctrl-C. */
  call: <K extends MethodKey>(key: K, params: ParamsOf<K>) => Promise<ResultOf<K>>;
  /** Like `call`, rendering the request's progress on stderr while it runs. */
  callWithProgress: <K extends MethodKey>(key: K, params: ParamsOf<K>) => Promise<ResultOf<K>>;
  /** A call Ctrl-C does not cancel: clean-up that must run after an interrupt (vm run --rm's delete). */
  callUninterruptible: <K extends MethodKey>(key: K, params: ParamsOf<K>) => Promise<ResultOf<K>>;
  /** Opens a stream connection to the daemon (starting it if needed) for a method that takes a streamToken. */
  openStream: (sinks: { stdout: Writable; stderr: Writable }) => Promise<StreamClient>;
}

/** Any commander command: the context only reads the global flags from it. */
export interface CommandLike {
  optsWithGlobals(): Record<string, unknown>;
}

const interrupt = new AbortController();
let interrupted = false;

/** Signals the CLI passes on to a guest command instead of acting on them itself. */
export type ForwardableSignal = 'INT' | 'TERM';
/** Returns true when it took care of the signal (sent it to the guest). */
type SignalForwarder = (name: ForwardableSignal) => boolean;
let forwarder: SignalForwarder | undefined;

/**
 * Ctrl-C (or SIGTERM) aborts the current request (the daemon cancels its
 * work); another one exits at once. While a guest command runs, a forwarder
 * gets the signal first (see forwardSignals).
 */
export function installInterruptHandler(onSecond: () => void): void {
  const onSignal = (name: ForwardableSignal): void => {
    if (forwarder?.(name) === true) return;
    if (interrupted) onSecond();
    interrupted = true;
    interrupt.abort(new BangerError('ERR_CANCELLED', name === 'INT' ? 'interrupted' : 'terminated'));
  };
  process.on('SIGINT', () => {
    onSignal('INT');
  });
  process.on('SIGTERM', () => {
    onSignal('TERM');
  });
}

/** Whether Ctrl-C or SIGTERM has been received (and not forwarded). */
export function wasInterrupted(): boolean {
  return interrupted;
}

/** Routes INT/TERM to `handler` until the returned function is called. */
export function forwardSignals(handler: SignalForwarder): () => void {
  forwarder = handler;
  return () => {
    if (forwarder === handler) forwarder = undefined;
  };
}

const connections: RpcClient[] = [];
let requestedExitCode: number | undefined;

/**
 * Sets the status the process exits with when the command returns normally
 * (doctor with failed checks; later `vm run` passing the guest's status through).
 */
export function setExitCode(code: number): void {
  requestedExitCode = code;
}

export function exitCodeRequested(): number | undefined {
  return requestedExitCode;
}

/** Closes every daemon connection the command opened, so the process can exit. */
export function closeConnections(): void {
  for (const client of connections.splice(0)) client.close();
}

export interface ContextOptions {
  /** Don't announce an auto-started daemon (for `daemon start`, which reports it itself). */
  quietStart?: boolean;
}

export function createContext(command: CommandLike, options: ContextOptions = {}): CliContext {
  const globals = command.optsWithGlobals();
  const out = new Output({ json: globals.json === true, verbose: globals.verbose === true });
  const pathEnv = currentPathEnv();
  const layout = resolveLayout(pathEnv);
  let connected: Promise<RpcClient> | undefined;
  const connect = async (autoStart: boolean): Promise<DaemonConnection | undefined> => {
    const connection = await connectDaemon({
      layout,
      uid: pathEnv.uid,
      autoStart,
      notice: (message) => {
        if (options.quietStart !== true || !message.startsWith('started ')) out.notice(message);
      },
    });
    if (connection !== undefined) connections.push(connection.client);
    return connection;
  };
  const daemon = (): Promise<RpcClient> =>
    (connected ??= connect(true).then((connection) => {
      if (connection === undefined) throw new Error('connectDaemon returned nothing with autoStart on');
      return connection.client;
    }));
  return {
    out,
    pathEnv,
    layout,
    signal: interrupt.signal,
    daemon,
    runningDaemon: () => connect(false),
    call: async (key, params) => (await daemon()).call(key, params, { signal: interrupt.signal }),
    callUninterruptible: async (key, params) => (await daemon()).call(key, params),
    openStream: async (sinks) => {
      await daemon();
      return StreamClient.open(layout.socketPath, {
        ...sinks,
        onNotice: (text) => {
          out.notice(text);
        },
      });
    },
    callWithProgress: async (key, params) => {
      const client = await daemon();
      const progress = new ProgressRenderer({ json: out.json });
      try {
        const result = await client.call(key, params, { signal: interrupt.signal, onProgress: progress.onProgress });
        progress.done(true);
        return result;
      } catch (error) {
        progress.done(false);
        throw error;
      }
    },
  };
}
