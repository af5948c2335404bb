/**
 * The daemon's RPC surface, declared once. The CLI calls these and the daemon
 * implements them; `Handlers` below makes the compiler insist that the daemon
 * has a handler for every method, and a test checks the same at run time.
 *
 * Params and results are plain JSON. Every method takes named params (an
 * object, possibly empty).
 */

import type { InitMode, NetworkMode, WorkspaceMode } from './schemas.js';
import type { EventsParams, GuestPortInfo, VmStatsInfo, VmStatsParams, VmStatsSample } from './observation.js';

export { DAEMON_EVENT_KINDS, EVENT_NOTIFICATION } from './observation.js';
export type { DaemonEvent, DaemonEventKind, EventsParams, GuestPortInfo, VmStatsInfo, VmStatsParams, VmStatsSample } from './observation.js';

/** A method's name plus phantom types for its params and result. */
export interface Method<P, R> {
  readonly name: string;
  /** Never set; carries the types. */
  readonly _types?: [P, R];
}

function method<P, R>(name: string): Method<P, R> {
  return { name };
}

/** Methods without params take `{}`. */
export type NoParams = Record<string, never>;

export interface PingResult {
  pid: number;
  version: string;
  buildId: string;
  startedAt: string;
  socketPath: string;
  stateDir: string;
  logPath: string;
  /** Requests currently being served, including this ping. */
  inFlight: number;
  /** The host network as this daemon sees it (absent from daemons older than it). */
  network?: NetworkStatusInfo;
}

export interface NetworkStatusInfo {
  /** Who makes privileged host changes: the root helper, or this (root) daemon in process. */
  privileged: 'helper' | 'in-process';
  bridge: string;
  subnet: string;
  dnsPort: number;
  /** Whether the bridge and banger's nftables tables have been set up by this daemon. */
  ready: boolean;
  /** How *.vm resolves on the host, when resolver routing is in place. */
  resolver: string | null;
  /** Idle taps kept ready, and taps in use by VMs. */
  pool: { size: number; idle: string[]; inUse: string[] };
}

export interface ShutdownResult {
  pid: number;
}

export interface SleepParams {
  ms: number;
}

export interface SleepResult {
  sleptMs: number;
}

/**
 * Live progress of a long request. The client puts a `progressToken` in the
 * params of a method that reports progress; the daemon then sends
 * PROGRESS_NOTIFICATION notifications carrying that token until it answers.
 */
export interface ProgressEvent {
  token: string;
  /** Stable stage id, e.g. `download`, `unpack`. */
  stage: string;
  /** Human description of what the stage is doing. */
  detail: string;
  /** For byte or item counts: how far, and out of how much when known. */
  current?: number;
  total?: number;
}

export const PROGRESS_NOTIFICATION = '$/banger/progress';

/** Params of a method that can report progress. */
export interface ProgressParams {
  progressToken?: string;
}

/** A kernel as the daemon reports it. */
export interface KernelInfo {
  id: string;
  name: string;
  state: 'pending' | 'ready' | 'failed';
  source: 'catalog' | 'import';
  /** Package version for catalog kernels; null for imports. */
  version: string | null;
  /** `uname -r`, when known. */
  release: string | null;
  package: { name: string; version: string; sha256: string; url: string } | null;
  modules: string[];
  createdAt: string;
  files: { dir: string; vmlinux: string; initramfs: string };
}

export interface KernelRefParams {
  ref: string;
}

/**
 * A catalog kernel by `name`, or a kernel bundle from `source` (made by
 * kernel.export), called `name` when given, else as its manifest says.
 */
export interface KernelPullParams extends ProgressParams {
  name?: string | undefined;
  /** The absolute path or http(s) URL of a `.tar.zst` kernel bundle. */
  source?: string | undefined;
  /** sha256 (hex) the bundle must have: required for a URL, checked for a file when given. */
  sha256?: string | undefined;
}

export interface KernelExportParams extends ProgressParams {
  ref: string;
  /** Absolute path of the bundle to write, ending in `.tar.zst`. */
  path: string;
  /** Replace a file already there (otherwise refused). */
  force?: boolean | undefined;
}

/** A bundle file that export wrote. */
export interface BundleFileInfo {
  path: string;
  /** sha256 (hex) of the file: what `pull <url> --sha256` wants. */
  sha256: string;
  sizeBytes: number;
}

export interface KernelImportParams extends ProgressParams {
  name: string;
  /** Absolute path of a bzImage or vmlinux. */
  kernelPath: string;
  /** Absolute path of the kernel's module tree (lib/modules/<release>). */
  modulesDir?: string;
}

export interface KernelCatalogEntryInfo {
  name: string;
  description: string;
  pulled: boolean;
}

/** An image as the daemon reports it. */
export interface ImageInfo {
  id: string;
  name: string;
  state: 'pending' | 'ready' | 'failed';
  source: 'catalog' | 'register' | 'registry' | 'bundle';
  /** Registry images: the reference pulled and the manifest digest it resolved to. */
  ref: string | null;
  digest: string | null;
  kernel: { id: string; name: string };
  /** The ext4 root; for registered (unmanaged) images, the user's own file. */
  rootfs: string;
  managed: boolean;
  sizeBytes: number;
  recipe: { suite: string; packages: string[]; mirror: string } | null;
  createdAt: string;
}

export interface ImageRefParams {
  ref: string;
}

export interface ImagePullParams extends ProgressParams {
  /**
   * A catalog name, an image's name (a registry image is checked for a newer
   * digest), a registry reference, or a bundle: the absolute path or http(s)
   * URL of a `.tar.zst` made by image.export.
   */
  source: string;
  /** Name for a registry image (default: from the reference, e.g. `node-22`) or a bundle (default: its manifest's). */
  name?: string | undefined;
  /**
   * Kernel to boot a registry image with (default: the catalog's Debian
   * kernel), or a bundle (default: the catalog entry's, else the manifest's).
   */
  kernel?: string | undefined;
  /** sha256 (hex) a bundle must have: required for a URL, checked for a file when given. */
  sha256?: string | undefined;
}

export interface ImageExportParams extends ProgressParams {
  ref: string;
  /** Absolute path of the bundle to write, ending in `.tar.zst`. */
  path: string;
  /** Replace a file already there (otherwise refused). */
  force?: boolean | undefined;
}

export interface ImageRegisterParams {
  name: string;
  /** Absolute path of an ext4 root filesystem image. */
  rootfs: string;
  /** Kernel name or id. */
  kernel: string;
}

export interface ImageCatalogEntryInfo {
  name: string;
  description: string;
  kernel: string;
  pulled: boolean;
}

/** A VM as the daemon reports it. */
export interface VmInfo {
  id: string;
  name: string;
  /** Durable state; `running` only while the VMM is really alive. */
  state: 'creating' | 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  image: string;
  ip: string;
  spec: VmSpecInfo;
  /** The last start or stop failure, if any. */
  lastError: string | null;
  createdAt: string;
  /** How it runs right now (kvm or tcg), when running. */
  accel: string | null;
  pid: number | null;
  /** The repo prepared in the guest, if any (`vm workspace prepare`, `vm run <path>`). */
  workspace: WorkspaceInfo | null;
  /** The latest resource sample while it runs (see vm.stats); null before the first one or when not running. */
  stats: VmStatsSample | null;
}

// The rules for these values live in ./schemas.ts; re-exported for the callers that know them from here.
export { WORKSPACE_MODES, type WorkspaceMode } from './schemas.js';

/** A workspace as recorded on its VM (durable: survives daemon restarts). */
export interface WorkspaceInfo {
  /** Where the repo lives in the guest, e.g. /root/repo. */
  guestPath: string;
  /** The host repo's top-level directory it was copied from. */
  sourcePath: string;
  /** The commit export diffs against by default: the host HEAD, or --from. */
  baseCommit: string;
  /** The host repo's HEAD when it was prepared; a different HEAD now means the workspace is stale. */
  sourceHead: string;
  mode: WorkspaceMode;
  /** The branch created in the guest with --branch, if any. */
  branch: string | null;
  includeUntracked: boolean;
  preparedAt: string;
}

export interface VmSpecInfo {
  vcpu: number;
  memoryMiB: number;
  diskSizeBytes: number;
  init: InitMode;
  /** The guest reaches beyond the host (masqueraded through it). */
  nat: boolean;
  /** isolated (default): no other guest is reachable; shared: the guests on the shared network reach each other. */
  network: NetworkMode;
}

export interface VmRefParams extends ProgressParams {
  ref: string;
}

export interface VmLogsParams extends VmRefParams {
  /** How many lines from the end of the console, 1 to 100000 (LOG_LINES); LOG_LINES_DEFAULT when left out. */
  lines?: number;
}

/**
 * Every spec field may be left out: the daemon fills it from config.toml
 * [vm_defaults], then host heuristics, then the built-in floor (see
 * vm.defaults), so the CLI, the SDK and MCP get the same VM for the same call.
 */
export interface VmCreateParams extends ProgressParams, Partial<VmSpecInfo> {
  name?: string;
  image?: string;
  /** Prepare the VM without booting it. */
  noStart?: boolean;
}

export interface VmSetParams {
  ref: string;
  vcpu?: number;
  memoryMiB?: number;
  diskSizeBytes?: number;
  /** Applied at once to a running VM. */
  nat?: boolean;
}

export interface VmSshTarget {
  name: string;
  host: string;
  user: string;
  keyPath: string;
  knownHosts: string;
}

/** Params of a method whose bytes travel on a stream connection (see ./stream.ts). */
export interface StreamParams {
  streamToken: string;
}

export interface WorkspacePrepareParams extends ProgressParams {
  ref: string;
  /** Absolute path inside the host repo (any directory of it). */
  sourcePath: string;
  /** Default /root/repo. */
  guestPath?: string;
  /** Default shallow. */
  mode?: WorkspaceMode;
  /** Also ship untracked files that are not ignored. */
  includeUntracked?: boolean;
  /** Create and check out this branch in the guest. */
  branch?: string;
  /** Start --branch from this commit instead of HEAD (the guest's files are then that commit's). */
  from?: string;
  /** Replace a guest workspace that has changes of its own. */
  force?: boolean;
}

export interface WorkspacePrepareResult {
  vm: string;
  workspace: WorkspaceInfo;
  /** Files shipped from the host working tree (0 with --from: the guest checks out the commit). */
  files: number;
  bytes: number;
  /** Untracked, non-ignored files left behind (without --include-untracked). */
  untrackedSkipped: number;
}

export interface WorkspaceExportParams extends StreamParams {
  ref: string;
  /** Diff against this commit instead of the recorded base. */
  baseCommit?: string;
  /** Only list the changed files; no patch on the stream. */
  stat?: boolean;
}

export interface ChangedFile {
  /** git's status letter: A added, M modified, D deleted, T type changed. */
  status: string;
  path: string;
}

export interface WorkspaceExportResult {
  vm: string;
  baseCommit: string;
  files: ChangedFile[];
  /** Bytes of the patch sent on the stream (0 with stat). */
  bytes: number;
}

export interface VmExecParams extends ProgressParams, StreamParams {
  ref: string;
  /** argv; each argument reaches the guest unchanged. */
  command: string[];
  /** Allocate a terminal of this size (stdin/stdout are a tty in the guest, stderr merges into stdout). */
  tty?: { cols: number; rows: number; term: string };
  /** Re-prepare a stale workspace before running. */
  autoPrepare?: boolean;
}

export interface VmExecResult {
  /** The status a shell would report: the command's exit code, or 128 + signal number. */
  exitCode: number;
  /** The signal that ended the command, if one did (e.g. INT). */
  signal: string | null;
}

/** What vm.create fills in for a spec field left out, and where each value came from. */
export interface VmDefaultsInfo extends VmSpecInfo {
  /** Per field: `config` ([vm_defaults] in config.toml), `auto` (sized to this machine) or `builtin`. */
  sources: { vcpu: DefaultSource; memoryMiB: DefaultSource; diskSizeBytes: DefaultSource };
}

export type DefaultSource = 'config' | 'auto' | 'builtin';

export const methods = {
  ping: method<NoParams, PingResult>('daemon.ping'),
  shutdown: method<NoParams, ShutdownResult>('daemon.shutdown'),
  /**
   * Waits `ms` milliseconds or until the request is cancelled. A diagnostic:
   * the integration tests use it to prove that a client going away cancels
   * the work of its requests.
   */
  sleep: method<SleepParams, SleepResult>('debug.sleep'),

  kernelList: method<NoParams, { kernels: KernelInfo[] }>('kernel.list'),
  kernelCatalog: method<NoParams, { entries: KernelCatalogEntryInfo[] }>('kernel.catalog'),
  kernelShow: method<KernelRefParams, KernelInfo>('kernel.show'),
  /** Pulls a catalog kernel or a kernel bundle (reports progress); a catalog kernel already present is returned with pulled=false. */
  kernelPull: method<KernelPullParams, { kernel: KernelInfo; pulled: boolean }>('kernel.pull'),
  /** Writes a kernel bundle (vmlinux, modules, manifest) that kernel.pull takes back; as the daemon's user. */
  kernelExport: method<KernelExportParams, BundleFileInfo & { kernel: string }>('kernel.export'),
  kernelImport: method<KernelImportParams, KernelInfo>('kernel.import'),
  /** Refused (ERR_IN_USE) while an image uses the kernel. */
  kernelDelete: method<KernelRefParams, KernelInfo>('kernel.delete'),

  imageList: method<NoParams, { images: ImageInfo[] }>('image.list'),
  imageCatalog: method<NoParams, { entries: ImageCatalogEntryInfo[] }>('image.catalog'),
  imageShow: method<ImageRefParams, ImageInfo>('image.show'),
  /** Builds or downloads a catalog image (and pulls its kernel), or pulls a registry image or a bundle; one already present is returned with pulled=false. */
  imagePull: method<ImagePullParams, { image: ImageInfo; pulled: boolean }>('image.pull'),
  /** Writes an image bundle (rootfs.ext4 + manifest) that image.pull takes back; as the daemon's user. */
  imageExport: method<ImageExportParams, BundleFileInfo & { image: string }>('image.export'),
  imageRegister: method<ImageRegisterParams, ImageInfo>('image.register'),
  /** Copies a registered image's rootfs into banger's store. */
  imagePromote: method<ImageRefParams & ProgressParams, ImageInfo>('image.promote'),
  /** Refused (ERR_IN_USE) while a VM uses the image. */
  imageDelete: method<ImageRefParams, ImageInfo>('image.delete'),

  /** Creates and (unless noStart) boots a VM, pulling its image on first use; reports stages. */
  vmCreate: method<VmCreateParams, VmInfo>('vm.create'),
  vmList: method<NoParams, { vms: VmInfo[] }>('vm.list'),
  vmShow: method<VmRefParams, VmInfo>('vm.show'),
  vmStart: method<VmRefParams, VmInfo>('vm.start'),
  vmStop: method<VmRefParams, VmInfo>('vm.stop'),
  vmRestart: method<VmRefParams, VmInfo>('vm.restart'),
  vmKill: method<VmRefParams, VmInfo>('vm.kill'),
  vmDelete: method<VmRefParams, VmInfo>('vm.delete'),
  /** The values vm.create uses for spec fields left out (config.toml [vm_defaults] > host heuristics > built-in). */
  vmDefaults: method<NoParams, VmDefaultsInfo>('vm.defaults'),
  /** The latest resource sample and a short history of one running VM, or of every running VM. */
  vmStats: method<VmStatsParams, { stats: VmStatsInfo[] }>('vm.stats'),
  /** The guest's listening TCP and UDP sockets, with their processes and where the host reaches them. */
  vmPorts: method<VmRefParams, { vm: string; ip: string; ports: GuestPortInfo[] }>('vm.ports'),
  /**
   * Subscribes to daemon events: EVENT_NOTIFICATION notifications carrying
   * `subscriptionToken` until the client cancels the request (or goes away),
   * which then answers { ended: true }. Starts with one vm.changed per VM, so
   * a client needs no separate list call to begin.
   */
  events: method<EventsParams, { ended: true }>('daemon.events'),
  /** Applies on the next start; the disk only grows. */
  vmSet: method<VmSetParams, VmInfo>('vm.set'),
  vmLogs: method<VmLogsParams, { lines: string[] }>('vm.logs'),
  /** Where and how to reach a running VM with the system ssh (host key already pinned). */
  vmSshTarget: method<VmRefParams, VmSshTarget>('vm.sshTarget'),
  /**
   * Runs a command in a running VM over its open guest connection, in the
   * workspace when there is one; stdin/stdout/stderr travel on the stream.
   */
  vmExec: method<VmExecParams, VmExecResult>('vm.exec'),
  /** Copies a host git repo into the guest (reports stages); records it on the VM. */
  workspacePrepare: method<WorkspacePrepareParams, WorkspacePrepareResult>('vm.workspace.prepare'),
  /** A binary-safe patch of the guest repo since the base, on the stream; never changes the guest repo. */
  workspaceExport: method<WorkspaceExportParams, WorkspaceExportResult>('vm.workspace.export'),
} as const;

export type Methods = typeof methods;
export type MethodKey = keyof Methods;
export type ParamsOf<K extends MethodKey> = Methods[K] extends Method<infer P, unknown> ? P : never;
export type ResultOf<K extends MethodKey> = Methods[K] extends Method<unknown, infer R> ? R : never;
