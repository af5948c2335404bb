import { Writable } from 'node:stream';

import type { RpcClient } from '../rpc/client.js';
import type { WorkspaceExportParams, WorkspaceExportResult, WorkspacePrepareParams, WorkspacePrepareResult } from '../rpc/methods.js';
import type { StreamOpener } from './exec.js';
import { splitOptions, type RequestOptions, type SignalOptions } from './request-options.js';

/** vm.workspace.prepare's params besides the VM: `sourcePath` (absolute, any directory of the host repo) is required. */
export type WorkspacePrepareOptions = Omit<WorkspacePrepareParams, 'ref' | 'progressToken'> & RequestOptions;

export interface WorkspaceExportOptions extends Omit<WorkspaceExportParams, 'ref' | 'streamToken'>, SignalOptions {
  /** Notes from banger about the export. */
  onNotice?: ((text: string) => void) | undefined;
}

/** What export returns: the daemon's result plus the patch itself. */
export interface WorkspaceExport extends WorkspaceExportResult {
  /** The patch bytes (`git apply` takes them); empty with `stat` or when nothing changed. */
  patch: Buffer;
  /** The patch decoded as UTF-8 (exact for text; use `patch` when files may hold other encodings). */
  patchText: string;
}

/** `client.workspace`: a host git repo in a VM and the guest's edits back (vm.workspace.* methods). */
export class WorkspaceApi {
  readonly #rpc: RpcClient;
  readonly #openStream: StreamOpener;

  constructor(rpc: RpcClient, openStream: StreamOpener) {
    this.#rpc = rpc;
    this.#openStream = openStream;
  }

  /** Copies the repo at `sourcePath` into the running VM `ref` (at /root/repo by default). Reports progress. */
  prepare(ref: string, options: WorkspacePrepareOptions): Promise<WorkspacePrepareResult> {
    const [params, call] = splitOptions(options);
    return this.#rpc.call('workspacePrepare', { ...params, ref }, call);
  }

  /**
   * The guest repo's changes since the workspace's base commit (or
   * `baseCommit`) as a binary-safe patch; the guest repo is left as it was.
   */
  async export(ref: string, options: WorkspaceExportOptions = {}): Promise<WorkspaceExport> {
    const { signal, onNotice, ...params } = options;
    const chunks: Buffer[] = [];
    const collect = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        chunks.push(chunk);
        done();
      },
    });
    const discard = new Writable({
      write: (_chunk, _encoding, done) => {
        done();
      },
    });
    const stream = await this.#openStream({ stdout: collect, stderr: discard, onNotice: onNotice ?? (() => undefined) });
    try {
      const result = await this.#rpc.call('workspaceExport', { ...params, ref, streamToken: stream.token }, { signal });
      await stream.done;
      const patch = Buffer.concat(chunks);
      return { ...result, patch, patchText: patch.toString('utf8') };
    } finally {
      stream.close();
    }
  }
}
