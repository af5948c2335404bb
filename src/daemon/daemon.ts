import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';

import { loadConfig } from '../config/load.js';
import type { BangerConfig } from '../config/schema.js';
import { currentPathEnv, resolveLayout, type PathEnv } from '../config/paths.js';
import { ensureRuntimeDir } from '../config/runtime-dir.js';
import { buildInfo } from '../build-info.js';
import { BangerError, toBangerError } from '../rpc/errors.js';
import { openStore, type Store } from '../store/database.js';
import { createHandlers } from './handlers.js';
import { vmDefaultsReader } from './vm-defaults.js';
import { InstanceLock } from './instance-lock.js';
import { createDaemonLogger, type Logger } from './logger.js';
import { RpcServer } from './rpc-server.js';
import { StreamHub } from './stream-hub.js';
import { createServices, type Services } from './services.js';
import { selectDriver, UnavailableDriver } from '../vmm/select.js';
import { DriverRegistry } from '../vmm/registry.js';
import type { VmRecord } from '../store/vms-repo.js';

/** Exit status of a daemon that found another one already serving its runtime dir. */
export const EXIT_ALREADY_RUNNING = 3;

/** How long in-flight requests may run on after a shutdown request before they are cancelled. */
const SHUTDOWN_GRACE_MS = 10_000;

/** How long a starting daemon waits for a predecessor that is still shutting down. */
const LOCK_WAIT_MS = 3_000;

/**
 * Runs bangerd until it is told to stop. Startup order matters: the state dir
 * and log come first so every later failure is logged; the instance lock comes
 * before anything that touches shared files; the socket is opened last, so a
 * client that can connect is talking to a fully started daemon.
 *
 * Returns the process exit status.
 */
export async function runDaemon(pathEnv: PathEnv = currentPathEnv()): Promise<number> {
  process.umask(0o077);
  const layout = resolveLayout(pathEnv);
  mkdirSync(layout.stateDir, { recursive: true, mode: 0o700 });
  const log = createDaemonLogger(layout.daemonLog, pathEnv.env.BANGER_LOG_LEVEL ?? 'info');
  const { version, buildId } = buildInfo();
  log.info({ version, build_id: buildId, socket: layout.socketPath }, 'bangerd starting');

  let lock: InstanceLock | undefined;
  let store: Store | undefined;
  let config: BangerConfig;
  try {
    ensureRuntimeDir(layout.runtimeDir, pathEnv.uid);
    lock = await InstanceLock.acquire(layout.runtimeDir, LOCK_WAIT_MS);
    config = loadConfig(layout.configFile, pathEnv.home);
    store = openStore(layout.storePath);
  } catch (thrown) {
    store?.close();
    await lock?.release();
    const error = toBangerError(thrown);
    if (error.code === 'ERR_DAEMON_ALREADY_RUNNING') {
      // Routine when several clients start a daemon at once: one wins, the rest step aside.
      log.info(error.message + '; exiting');
      return EXIT_ALREADY_RUNNING;
    }
    logStartupFailure(log, error, thrown);
    return 1;
  }

  const startedAt = new Date();
  let stopping: Promise<void> | undefined;
  let exitCode = 0;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });

  const openedStore = store;
  const heldLock = lock;
  let services: Services | undefined;
  /** Host state this daemon set up, undone on every exit path (including a startup that fails half-way). */
  const releaseHostState = async (): Promise<void> => {
    if (services === undefined) return;
    // First: a sample in progress runs guest commands on the connections closed next.
    await services.stats.close();
    services.guests.closeAll();
    services.consoles.closeAll();
    await services.dns.close();
    await services.network.close();
  };
  let stopsDue: VmRecord[];
  try {
    services = createServices({ layout, store: openedStore, config, env: pathEnv.env, drivers: chooseDrivers(config, pathEnv.env, log), log });
    services.kernels.sweepStaging();
    services.images.sweepStaging();
    await services.dns.listen('127.0.0.1', config.network.dnsPort);
    stopsDue = await services.vms.reconcile(log);
  } catch (thrown) {
    await releaseHostState();
    openedStore.close();
    await heldLock.release();
    logStartupFailure(log, toBangerError(thrown), thrown);
    return 1;
  }
  const ready = services;
  // Bridge, pool, DNS on the bridge: ready before the next create asks (and
  // for VMs that outlived the last daemon). The first create ever sets them
  // up itself; a failure here (no helper yet) is reported to whoever starts a VM.
  if (existsSync(`/sys/class/net/${config.network.bridge}`)) {
    ready.network.ensureReady().catch((error: unknown) => {
      log.warn({ err_message: error instanceof Error ? error.message : String(error) }, 'host network not ready yet');
    });
  }
  const streams = new StreamHub(log);
  const server: RpcServer = new RpcServer(
    createHandlers({
      layout,
      ...ready,
      streams,
      vmDefaults: vmDefaultsReader(layout, pathEnv.home, config.vmDefaults),
      startedAt,
      inFlight: () => server.inFlightCount,
      requestShutdown: (reason) => {
        setImmediate(() => void shutdown(reason));
      },
    }),
    log,
    streams,
  );

  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info({ reason, in_flight: server.inFlightCount }, 'bangerd shutting down');
      const closed = server.stopAccepting();
      try {
        await server.drain(SHUTDOWN_GRACE_MS);
        await closed;
      } catch (error) {
        exitCode = 1;
        log.error({ err: error }, 'error while draining requests');
      }
      // VMs keep running; their guest connections are reopened by the next daemon on demand.
      await releaseHostState();
      openedStore.close();
      rmSync(layout.socketPath, { force: true });
      await heldLock.release();
      log.info('bangerd stopped');
      resolveStopped();
    })();
    return stopping;
  };

  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => undefined);

  try {
    await server.listen(layout.socketPath);
  } catch (thrown) {
    const error = new BangerError('ERR_DAEMON_START_FAILED', `cannot listen on ${layout.socketPath}`, { cause: thrown });
    logStartupFailure(log, error, thrown);
    await releaseHostState();
    openedStore.close();
    await heldLock.release();
    return 1;
  }
  log.info({ socket: layout.socketPath }, 'bangerd ready');
  ready.stats.start();
  if (stopsDue.length > 0) {
    const opId = `startup-${randomUUID()}`;
    const opLog = log.child({ op_id: opId });
    void ready.vms.finishStops(stopsDue, { opId, signal: new AbortController().signal, log: opLog, progress: () => undefined });
  }
  await stopped;
  return exitCode;
}

/**
 * The VMM new VMs start with, and control of every kind for VMs already
 * running. A daemon without a usable VMM still serves kernels and images and
 * controls existing VMs; VM starts fail with the reason.
 */
function chooseDrivers(config: BangerConfig, env: NodeJS.ProcessEnv, log: Logger): DriverRegistry {
  try {
    const choice = selectDriver(config, env);
    log.info({ vmm: choice.reason }, 'vmm selected');
    return new DriverRegistry(choice.driver);
  } catch (error) {
    const reason = toBangerError(error);
    log.warn({ code: reason.code, err_message: reason.message }, 'no usable vmm: VMs cannot start');
    return new DriverRegistry(new UnavailableDriver(reason), { startable: false });
  }
}

/**
 * A startup failure is logged as a `fatal` line carrying the error code and
 * hint; the CLI that spawned the daemon reads it back from the log to explain
 * why the daemon did not come up.
 */
function logStartupFailure(log: Logger, error: BangerError, thrown: unknown): void {
  log.fatal({ code: error.code, hint: error.hint, err: thrown instanceof Error ? thrown : undefined }, error.message);
}
