/**
 * banger's SDK: `import { connect } from 'banger'`. A typed client of the
 * daemon's RPC method table (the one the CLI uses), with namespaces for VMs,
 * images, kernels and workspaces, streaming exec, and daemon events.
 * docs/sdk.md is the guide. Kept small on purpose: nothing here loads the
 * CLI's command parser or renderers.
 */

export { connect, type ConnectOptions } from './connect.js';
export { BangerClient, type CallArgs } from './client.js';
export type { RequestOptions, SignalOptions } from './request-options.js';
export type { VmApi, VmCreateOptions, VmSetOptions, VmLogsOptions, RunOptions, RunResult } from './vm-api.js';
export type { ExecOptions, ExecProcess, ExecSignal, ExecStdin } from './exec.js';
export type {
  ImageApi,
  KernelApi,
  ImagePullOptions,
  KernelPullOptions,
  KernelImportOptions,
  ImageRegisterOptions,
  ExportBundleOptions,
} from './catalog-api.js';
export type { WorkspaceApi, WorkspacePrepareOptions, WorkspaceExportOptions, WorkspaceExport } from './workspace-api.js';
export type { EventsOptions } from './events.js';

export { BangerError, isErrorCode, WIRE_CODES, type ErrorCode, type SerializedError } from '../rpc/errors.js';
export { DAEMON_EVENT_KINDS, WORKSPACE_MODES } from '../rpc/methods.js';
export type {
  BundleFileInfo,
  ChangedFile,
  DaemonEvent,
  DaemonEventKind,
  DefaultSource,
  GuestPortInfo,
  ImageCatalogEntryInfo,
  ImageInfo,
  KernelCatalogEntryInfo,
  KernelInfo,
  MethodKey,
  NetworkStatusInfo,
  ParamsOf,
  PingResult,
  ProgressEvent,
  ResultOf,
  VmDefaultsInfo,
  VmExecResult,
  VmInfo,
  VmSpecInfo,
  VmSshTarget,
  VmStatsInfo,
  VmStatsSample,
  WorkspaceExportResult,
  WorkspaceInfo,
  WorkspaceMode,
  WorkspacePrepareResult,
} from '../rpc/methods.js';
export type { InitMode, NetworkMode } from '../rpc/schemas.js';

import { WIRE_CODES, type ErrorCode } from '../rpc/errors.js';

/** Every stable error code a BangerError can carry (`if (e.code === 'ERR_NOT_FOUND')`). */
export const ERROR_CODES: readonly ErrorCode[] = Object.keys(WIRE_CODES) as ErrorCode[];
