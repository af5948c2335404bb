import { constants, openSync } from 'node:fs';
import { connect, Socket } from 'node:net';

import type { Logger } from 'pino';

import type { VmmHandle } from '../../vmm/driver.js';
import { resumeWhenConsoleConnected } from '../../vmm/qemu/qemu-console.js';
import { readTailLines, RotatingLog } from './rotating-log.js';

/**
 * The guest's serial console on the host: the daemon reads it from the
 * VMM (the socket or pipe the VM's handle names) and keeps it in the VM's
 * console.log, at most CONSOLE_LOG_CAP_BYTES, whose previous generation is
 * console.log.1: at most twice the cap per VM on disk, ever, since only the
 * daemon writes these files.
 *
 * Kept: every byte the guest writes while a daemon records its VM, and the
 * boot from its first byte (QEMU starts the guest stopped and attach resumes
 * it once QEMU has taken the reader; Firecracker's pipe holds what the guest
 * writes before attach, up to 64 KiB). Dropped: what the guest writes while
 * no daemon records it (daemon stopped, crashed or restarting). QEMU
 * discards all of it; Firecracker's pipe keeps the first 64 KiB of it, which
 * the next daemon records on attach, and Firecracker discards the rest.
 */

/** The size at which console.log becomes console.log.1. */
export const CONSOLE_LOG_CAP_BYTES = 1024 * 1024;
/** The most `vm logs` reads to find the lines asked for: both generations at the default cap. */
export const CONSOLE_TAIL_MAX_BYTES = 2 * CONSOLE_LOG_CAP_BYTES;

/** The last `lines` non-blank lines of a VM's console (console.log, continued back into console.log.1), read from the end. */
export function readConsoleTail(logPath: string, lines: number): string[] {
  return readTailLines(logPath, lines, CONSOLE_TAIL_MAX_BYTES).lines;
}

/** One VM's console being recorded: its source (socket or pipe) and its log. */
interface Recording {
  handle: VmmHandle;
  source: Socket;
  log: RotatingLog;
  /** Set once the recording ended (detached, the VMM closed its end, or an error). */
  ended: boolean;
}

/**
 * Records each running VM's console into its capped log. The VM service
 * attaches a VM right after its VMM starts and, at daemon startup, every VM
 * it finds still running; it detaches a VM when it stops; the daemon closes
 * all at shutdown. A recording also ends by itself when the VMM closes the
 * console (it exited), and a later attach starts a new one.
 */
export class ConsoleRecorder {
  readonly #log: Logger;
  readonly #capBytes: number;
  readonly #recordings = new Map<string, Recording>();

  constructor(deps: { log: Logger; capBytes?: number }) {
    this.#log = deps.log;
    this.#capBytes = deps.capBytes ?? CONSOLE_LOG_CAP_BYTES;
  }

  /**
   * Starts recording `vmId`'s console into `logPath` (rotating to
   * `logPath.1`). Idempotent for the same VMM (pid and control socket); a
   * different handle replaces the recording. Returns at once: connecting,
   * and resuming a guest the driver started paused (`console.startedPaused`)
   * once the VMM has accepted the reader, happen in the background, and a
   * failure to connect is logged, with the paused guest resumed anyway. A
   * handle without a console (a VM started by an older banger, whose VMM
   * writes console.log itself) is left alone, with a warning.
   */
  attach(vmId: string, handle: VmmHandle, logPath: string): void {
    const existing = this.#recordings.get(vmId);
    if (existing !== undefined && !existing.ended && sameVmm(existing.handle, handle)) return;
    this.detach(vmId);
    const console = handle.console;
    if (console === undefined) {
      this.#log.warn({ vm_id: vmId }, 'console: this VM writes its console log itself, uncapped, until it is restarted');
      return;
    }
    let log: RotatingLog;
    let source: Socket;
    try {
      log = new RotatingLog(logPath, this.#capBytes);
    } catch (error) {
      this.#log.warn({ vm_id: vmId, err_message: messageOf(error) }, 'console: cannot open the log');
      if (console.startedPaused) this.#resume(vmId, handle, false);
      return;
    }
    try {
      source = console.kind === 'socket' ? connect(console.path) : openPipe(console.path);
    } catch (error) {
      // Only the pipe opens synchronously: ENOENT means the VMM and its runtime dir are gone.
      log.close();
      this.#log.warn({ vm_id: vmId, err_message: messageOf(error) }, 'console: cannot open the console pipe');
      return;
    }
    const recording: Recording = { handle, source, log, ended: false };
    this.#recordings.set(vmId, recording);
    let connected = console.kind === 'fifo';
    let failed = false;
    source.on('connect', () => {
      connected = true;
      this.#log.debug({ vm_id: vmId }, 'console: connected');
      if (console.startedPaused) this.#resume(vmId, handle, true);
    });
    source.on('data', (chunk: Buffer) => {
      if (recording.ended) return;
      try {
        log.write(chunk);
      } catch (error) {
        this.#log.warn({ vm_id: vmId, err_message: messageOf(error) }, 'console: cannot write the log; recording stopped');
        this.#end(vmId, recording);
      }
    });
    source.on('error', (error) => {
      failed = true;
      this.#log.warn({ vm_id: vmId, err_message: error.message }, connected ? 'console: read failed' : 'console: cannot connect');
      if (!connected && console.startedPaused) this.#resume(vmId, handle, false);
    });
    source.on('close', () => {
      if (!recording.ended && !failed) this.#log.info({ vm_id: vmId }, 'console: closed by the VMM (it exited)');
      this.#end(vmId, recording);
    });
  }

  /** Stops recording `vmId` (its VM stopped or died). Idempotent. */
  detach(vmId: string): void {
    const recording = this.#recordings.get(vmId);
    if (recording !== undefined) this.#end(vmId, recording);
  }

  /** Stops every recording (daemon shutdown). The VMs keep running; their output is dropped until a daemon attaches again. */
  closeAll(): void {
    for (const [vmId, recording] of [...this.#recordings]) this.#end(vmId, recording);
  }

  #end(vmId: string, recording: Recording): void {
    if (this.#recordings.get(vmId) === recording) this.#recordings.delete(vmId);
    if (recording.ended) return;
    recording.ended = true;
    recording.source.destroy();
    try {
      recording.log.close();
    } catch {
      // already closed by a failed rotation
    }
  }

  /** Lets a guest the driver started paused run (see resumeWhenConsoleConnected). */
  #resume(vmId: string, handle: VmmHandle, connected: boolean): void {
    if (handle.driver !== 'qemu') {
      this.#log.error({ vm_id: vmId, driver: handle.driver }, 'console: cannot resume a paused guest of this VMM');
      return;
    }
    resumeWhenConsoleConnected(handle.controlSocket, connected).then(
      (accepted) => {
        if (connected && !accepted) this.#log.warn({ vm_id: vmId }, 'console: QEMU did not take the console connection; guest resumed anyway');
      },
      (error: unknown) => {
        this.#log.warn({ vm_id: vmId, err_message: messageOf(error) }, 'console: cannot resume the guest');
      },
    );
  }
}

/**
 * Opens the read end of a VMM's console pipe as a stream. Non-blocking, so
 * neither the open nor a read waits for the writer, and read through a
 * libuv pipe (not fs streams, whose blocking reads would each hold a thread
 * of the small pool the daemon's file I/O shares). The stream ends when the
 * VMM, the last writer, exits.
 */
function openPipe(path: string): Socket {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return new Socket({ fd, readable: true, writable: false });
}

function sameVmm(a: VmmHandle, b: VmmHandle): boolean {
  return a.pid === b.pid && a.controlSocket === b.controlSocket;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
