import type { RpcClient } from '../rpc/client.js';
import type { GuestPortInfo, VmCreateParams, VmDefaultsInfo, VmInfo, VmSetParams, VmSshTarget, VmStatsInfo } from '../rpc/methods.js';
import { startExec, type ExecOptions, type ExecProcess, type ExecStdin, type StreamOpener } from './exec.js';
import { signalOnly, splitOptions, type RequestOptions, type SignalOptions } from './request-options.js';

/**
 * vm.create's params: every field may be left out (the daemon fills the spec
 * from config.toml [vm_defaults], then host heuristics, then built-ins: see
 * `defaults()`). `image` defaults to the daemon's default image.
 */
export type VmCreateOptions = Omit<VmCreateParams, 'progressToken'> & RequestOptions;
export type VmSetOptions = Omit<VmSetParams, 'ref'> & SignalOptions;
export interface VmLogsOptions extends RequestOptions {
  /** Lines from the end of the console (1 to 100000; the daemon's default when left out). */
  lines?: number | undefined;
}

export interface RunOptions extends Omit<ExecOptions, 'stdin'> {
  /** The command's stdin; by default it reads EOF at once. */
  stdin?: ExecStdin | undefined;
}

/** What `run` collected: the exit status and all of the output, decoded as UTF-8. */
export interface RunResult {
  exitCode: number;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** `client.vm`: VM lifecycle, inspection and commands (vm.* methods). */
export class VmApi {
  readonly #rpc: RpcClient;
  readonly #openStream: StreamOpener;

  constructor(rpc: RpcClient, openStream: StreamOpener) {
    this.#rpc = rpc;
    this.#openStream = openStream;
  }

  /** Creates a VM and (unless `noStart`) boots it, pulling its image on first use. Reports progress. */
  create(options: VmCreateOptions = {}): Promise<VmInfo> {
    const [params, call] = splitOptions(options);
    return this.#rpc.call('vmCreate', params, call);
  }

  async list(options: SignalOptions = {}): Promise<VmInfo[]> {
    return (await this.#rpc.call('vmList', {}, signalOnly(options))).vms;
  }

  /** A VM by name or id (ERR_NOT_FOUND when there is none). */
  show(ref: string, options: RequestOptions = {}): Promise<VmInfo> {
    return this.#rpc.call('vmShow', { ref }, options);
  }

  start(ref: string, options: RequestOptions = {}): Promise<VmInfo> {
    return this.#rpc.call('vmStart', { ref }, options);
  }

  /** Shuts the guest down cleanly. */
  stop(ref: string, options: RequestOptions = {}): Promise<VmInfo> {
    return this.#rpc.call('vmStop', { ref }, options);
  }

  restart(ref: string, options: RequestOptions = {}): Promise<VmInfo> {
    return this.#rpc.call('vmRestart', { ref }, options);
  }

  /** Stops the VMM at once, without a guest shutdown. */
  kill(ref: string, options: RequestOptions = {}): Promise<VmInfo> {
    return this.#rpc.call('vmKill', { ref }, options);
  }

  /** Deletes a VM and its disks (a running one is killed first). */
  delete(ref: string, options: RequestOptions = {}): Promise<VmInfo> {
    return this.#rpc.call('vmDelete', { ref }, options);
  }

  /** Changes a VM's spec: applied on the next start (nat at once); the disk only grows. */
  set(ref: string, changes: VmSetOptions): Promise<VmInfo> {
    const { signal, ...params } = changes;
    return this.#rpc.call('vmSet', { ...params, ref }, { signal });
  }

  /** The last lines of the VM's console. */
  async logs(ref: string, options: VmLogsOptions = {}): Promise<string[]> {
    const { lines, ...call } = options;
    return (await this.#rpc.call('vmLogs', { ref, ...(lines === undefined ? {} : { lines }) }, call)).lines;
  }

  /** What `create` fills in for a spec field left out, and where each value came from. */
  defaults(options: SignalOptions = {}): Promise<VmDefaultsInfo> {
    return this.#rpc.call('vmDefaults', {}, signalOnly(options));
  }

  /** Resource samples of one running VM, or of every running VM when `ref` is left out. */
  async stats(ref?: string, options: SignalOptions = {}): Promise<VmStatsInfo[]> {
    return (await this.#rpc.call('vmStats', ref === undefined ? {} : { ref }, signalOnly(options))).stats;
  }

  /** The guest's listening sockets, and where the host reaches each. */
  ports(ref: string, options: RequestOptions = {}): Promise<{ vm: string; ip: string; ports: GuestPortInfo[] }> {
    return this.#rpc.call('vmPorts', { ref }, options);
  }

  /** How to reach a running VM with the system ssh (host key pinned in `knownHosts`). */
  sshTarget(ref: string, options: RequestOptions = {}): Promise<VmSshTarget> {
    return this.#rpc.call('vmSshTarget', { ref }, options);
  }

  /**
   * Starts `argv` in a running VM (in its workspace when it has one) and
   * returns at once: stream its output, feed its stdin, signal it, await
   * `result`. Aborting `signal` sends TERM, waits `abortGraceMs`, then cancels
   * (the daemon KILLs the command); `result` rejects with ERR_CANCELLED.
   */
  exec(ref: string, argv: readonly string[], options: ExecOptions = {}): ExecProcess {
    return startExec(this.#rpc, this.#openStream, ref, argv, options);
  }

  /**
   * Runs `argv` to completion and collects its output. A non-zero exit is a
   * result, not an error; errors are banger's (no such VM, cancelled…).
   */
  async run(ref: string, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const { onStdout, onStderr } = options;
    const command = this.exec(ref, argv, {
      ...options,
      stdin: options.stdin ?? '',
      onStdout: (chunk) => {
        stdout.push(chunk);
        onStdout?.(chunk);
      },
      onStderr: (chunk) => {
        stderr.push(chunk);
        onStderr?.(chunk);
      },
    });
    const result = await command.result;
    return { ...result, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
  }
}
