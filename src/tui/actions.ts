import type { DaemonEvent, ProgressEvent, VmDefaultsInfo, VmInfo } from '../rpc/methods.js';

/**
 * Everything the TUI asks of the outside world. The components get this
 * interface; runTui builds it over the daemon connection (daemon-actions.ts)
 * and the component tests hand in a fake. Every method rejects with a
 * BangerError the status line shows (with its hint).
 */
export interface TuiActions {
  /** Receives daemon events until `signal` aborts (resolves) or the stream fails (rejects). */
  subscribe: (onEvent: (event: DaemonEvent) => void, signal: AbortSignal) => Promise<void>;
  start: (vm: string) => Promise<VmInfo>;
  stop: (vm: string) => Promise<VmInfo>;
  restart: (vm: string) => Promise<VmInfo>;
  delete: (vm: string) => Promise<VmInfo>;
  /** The values vm.create fills in for fields left blank (the form's placeholders). */
  defaults: () => Promise<VmDefaultsInfo>;
  /** vm.create with only the fields given; progress events as the daemon sends them. */
  create: (spec: CreateSpec, onProgress: (event: ProgressEvent) => void) => Promise<VmInfo>;
  /** The last `lines` lines of the VM's serial console. */
  logs: (vm: string, lines: number) => Promise<string[]>;
  /** Writes the workspace's patch to `path` (relative to the working directory), atomically. */
  exportPatch: (vm: string, path: string) => Promise<ExportSummary>;
  /**
   * An interactive `vm ssh`: the real one leaves the TUI (ink unmounted, the
   * terminal back in cooked mode on the main screen), runs the system ssh,
   * and redraws the TUI when it exits. Resolves with ssh's exit status.
   */
  ssh: (vm: string) => Promise<number>;
}

/** The create form's fields; a blank field is left out, so the daemon's default applies. */
export interface CreateSpec {
  name?: string;
  image?: string;
  vcpu?: number;
  memoryMiB?: number;
}

export interface ExportSummary {
  /** Absolute path of the patch written. */
  path: string;
  files: number;
  bytes: number;
}
