import { StreamClient } from '../cli/stream-client.js';
import type { RpcClient } from '../rpc/client.js';
import type { DaemonEvent, MethodKey, NoParams, ParamsOf, PingResult, ResultOf } from '../rpc/methods.js';
import { ImageApi, KernelApi } from './catalog-api.js';
import { subscribeEvents, type EventsOptions } from './events.js';
import type { StreamOpener } from './exec.js';
import type { RequestOptions } from './request-options.js';
import { VmApi } from './vm-api.js';
import { WorkspaceApi } from './workspace-api.js';

/** `call`'s arguments: params may be left out for a method whose params are all optional. */
export type CallArgs<K extends MethodKey> =
  ParamsOf<K> extends NoParams
    ? [params?: ParamsOf<K>, options?: RequestOptions]
    : Partial<ParamsOf<K>> extends ParamsOf<K>
      ? [params?: ParamsOf<K>, options?: RequestOptions]
      : [params: ParamsOf<K>, options?: RequestOptions];

/**
 * A connection to bangerd (made by `connect`). Every method rejects with a
 * BangerError. Close it when done: the open connection keeps Node running.
 */
export class BangerClient {
  readonly vm: VmApi;
  readonly image: ImageApi;
  readonly kernel: KernelApi;
  readonly workspace: WorkspaceApi;
  /** The daemon this client talks to, as it answered daemon.ping on connect. */
  readonly daemon: PingResult;
  readonly #rpc: RpcClient;
  readonly #streams = new Set<StreamClient>();

  /** @internal Use `connect()`. */
  constructor(rpc: RpcClient, daemon: PingResult, socketPath: string) {
    this.#rpc = rpc;
    this.daemon = daemon;
    const openStream: StreamOpener = async (sinks) => {
      const stream = await StreamClient.open(socketPath, sinks);
      this.#streams.add(stream);
      void stream.done.then(() => this.#streams.delete(stream));
      return stream;
    };
    this.vm = new VmApi(rpc, openStream);
    this.image = new ImageApi(rpc);
    this.kernel = new KernelApi(rpc);
    this.workspace = new WorkspaceApi(rpc, openStream);
  }

  /**
   * Calls any method of the daemon's method table by key (`'vmShow'`,
   * `'imagePull'`, `'sleep'`…; see MethodKey), with its typed params and
   * result. `onProgress` only for methods that report progress. The two
   * methods whose bytes travel on a stream (vmExec, workspaceExport) are
   * easier through `vm.exec` and `workspace.export`.
   */
  call<K extends MethodKey>(key: K, ...args: CallArgs<K>): Promise<ResultOf<K>> {
    const [params, options] = args;
    return this.#rpc.call(key, params ?? ({} as ParamsOf<K>), options ?? {});
  }

  /** The daemon's events as an async iterable (see subscribeEvents): `for await (const e of client.events({ signal }))`. */
  events(options: EventsOptions = {}): AsyncGenerator<DaemonEvent, void, undefined> {
    return subscribeEvents(this.#rpc, options);
  }

  /** Whether the connection is gone: closed by `close()`, or by the daemon (it stopped or restarted); connect again then. */
  get closed(): boolean {
    return this.#rpc.closed;
  }

  /** Closes the connection and every stream: calls still in flight reject, and the daemon cancels their work. */
  close(): void {
    for (const stream of this.#streams) stream.close();
    this.#streams.clear();
    this.#rpc.close();
  }
}
