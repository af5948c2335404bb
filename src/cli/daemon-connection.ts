import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';

import type { Layout } from '../config/paths.js';
import { insecureRuntimeDirError, inspectRuntimeDir, isUnsafeRuntimeDir } from '../config/runtime-dir.js';
import { buildInfo } from '../build-info.js';
import { distPath } from '../dist-root.js';
import { pidAlive } from '../host/process.js';
import { BangerError, hasErrnoCode, isErrorCode } from '../rpc/errors.js';
import { RpcClient } from '../rpc/client.js';
import type { PingResult } from '../rpc/methods.js';

/** The daemon's own exit status for "another bangerd already serves this runtime dir". */
const EXIT_ALREADY_RUNNING = 3;
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 20_000;
const POLL_MS = 50;

export interface DaemonConnection {
  client: RpcClient;
  ping: PingResult;
}

export interface ConnectOptions {
  layout: Layout;
  uid: number;
  /** Start the daemon when it is not running (every command but `daemon status|stop`). */
  autoStart: boolean;
  /** Tells the user about starts and restarts (stderr). */
  notice: (message: string) => void;
  env?: NodeJS.ProcessEnv;
}

/** Path of the daemon entry point that belongs to this CLI's build. */
function daemonEntry(): string {
  return distPath('src', 'daemon', 'main.js');
}

/**
 * Connects to bangerd, starting it if needed and replacing it when it runs a
 * different build than this CLI (a stale daemon left over from before an
 * upgrade). Returns undefined only when autoStart is off and no daemon runs.
 */
export async function connectDaemon(options: ConnectOptions): Promise<DaemonConnection | undefined> {
  refuseInsecureRuntimeDir(options.layout, options.uid);
  const existing = await tryConnect(options.layout.socketPath);
  if (existing !== undefined) {
    const ours = buildInfo().buildId;
    if (existing.ping.buildId === ours || !options.autoStart) return existing;
    options.notice(`restarting bangerd: it runs build ${existing.ping.buildId}, this banger is build ${ours}`);
    await stopDaemon(existing);
  } else if (!options.autoStart) {
    return undefined;
  }
  return startDaemon(options);
}

/** Connects and pings; undefined when nothing is listening. */
export async function tryConnect(socketPath: string): Promise<DaemonConnection | undefined> {
  let client: RpcClient;
  try {
    client = await RpcClient.connect(socketPath);
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT') || hasErrnoCode(error, 'ECONNREFUSED')) return undefined;
    throw new BangerError('ERR_DAEMON_UNREACHABLE', `cannot connect to bangerd at ${socketPath}`, {
      cause: error,
      hint: 'check the permissions of the runtime dir with `banger doctor`',
    });
  }
  try {
    return { client, ping: await client.call('ping', {}) };
  } catch (error) {
    client.close();
    // A daemon that accepted but closed on us is on its way out.
    if (error instanceof BangerError && error.code === 'ERR_DAEMON_UNREACHABLE') return undefined;
    throw error;
  }
}

/** Asks a daemon to shut down gracefully and waits until its process is gone. */
export async function stopDaemon(connection: DaemonConnection): Promise<void> {
  const { pid } = connection.ping;
  try {
    await connection.client.call('shutdown', {});
  } catch (error) {
    // It may close the connection before the response arrives; its exit is what counts.
    if (!(error instanceof BangerError && error.code === 'ERR_DAEMON_UNREACHABLE')) throw error;
  } finally {
    connection.client.close();
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) {
      throw new BangerError('ERR_DAEMON_UNREACHABLE', `bangerd (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000}s`, {
        hint: `see \`banger daemon logs\`; as a last resort: kill ${pid}`,
      });
    }
    await delay(POLL_MS);
  }
}

/**
 * Spawns a detached bangerd (stdout/stderr appended to the daemon log) and
 * waits until it answers. If it dies first, the `fatal` line it logged
 * explains why and becomes this error. A daemon that exits because another
 * one won the race to start is fine: we connect to the winner.
 */
async function startDaemon(options: ConnectOptions): Promise<DaemonConnection> {
  const { layout } = options;
  mkdirSync(layout.stateDir, { recursive: true, mode: 0o700 });
  const logOffset = fileSize(layout.daemonLog);
  const logFd = openSync(layout.daemonLog, 'a', 0o600);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const child = spawn(process.execPath, [daemonEntry()], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: options.env ?? process.env,
  });
  closeSync(logFd);
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  child.unref();

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const connection = await tryConnect(layout.socketPath);
    if (connection !== undefined) {
      if (connection.ping.pid === child.pid) options.notice(`started bangerd (pid ${connection.ping.pid})`);
      return connection;
    }
    if (exited !== undefined && exited.code !== EXIT_ALREADY_RUNNING) {
      throw startFailure(layout.daemonLog, logOffset, exited);
    }
    if (Date.now() > deadline) {
      throw new BangerError('ERR_DAEMON_START_FAILED', `bangerd did not become ready within ${START_TIMEOUT_MS / 1000}s`, {
        hint: 'see `banger daemon logs` for what it was doing',
      });
    }
    await delay(POLL_MS);
  }
}

function startFailure(logPath: string, offset: number, exited: { code: number | null; signal: NodeJS.Signals | null }): BangerError {
  const how = exited.signal === null ? `exit status ${exited.code ?? '?'}` : `signal ${exited.signal}`;
  const fatal = lastFatalLine(logPath, offset);
  if (fatal !== undefined) {
    const code = isErrorCode(fatal.code) ? fatal.code : 'ERR_DAEMON_START_FAILED';
    return new BangerError(code, `bangerd failed to start: ${fatal.msg}`, {
      hint: fatal.hint ?? 'see `banger daemon logs` for details',
    });
  }
  return new BangerError('ERR_DAEMON_START_FAILED', `bangerd exited during startup (${how})`, {
    hint: 'see `banger daemon logs` for details',
  });
}

interface FatalLine {
  msg: string;
  code?: string;
  hint?: string;
}

/** The last `fatal` JSON line the daemon appended to its log after `offset`. */
function lastFatalLine(logPath: string, offset: number): FatalLine | undefined {
  let text: string;
  try {
    const fd = openSync(logPath, 'r');
    try {
      const size = statSync(logPath).size;
      const buffer = Buffer.alloc(Math.max(0, size - offset));
      readSync(fd, buffer, 0, buffer.length, offset);
      text = buffer.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  let found: FatalLine | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown; code?: unknown; hint?: unknown };
      if (entry.level === 'fatal' && typeof entry.msg === 'string') {
        found = {
          msg: entry.msg,
          ...(typeof entry.code === 'string' ? { code: entry.code } : {}),
          ...(typeof entry.hint === 'string' ? { hint: entry.hint } : {}),
        };
      }
    } catch {
      // Not a log line (e.g. a crash trace on stderr); skip it.
    }
  }
  return found;
}

/** The CLI refuses to talk through a runtime dir someone else could control. */
function refuseInsecureRuntimeDir(layout: Layout, uid: number): void {
  const state = inspectRuntimeDir(layout.runtimeDir, uid);
  if (isUnsafeRuntimeDir(state)) throw insecureRuntimeDirError(layout.runtimeDir, state);
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
