import type { DaemonEvent, ProgressEvent, VmDefaultsInfo, VmInfo } from '../rpc/methods.js';
import type { CreateSpec, ExportSummary, TuiActions } from './actions.js';

/** A call the fake received, and the means to answer it when the test decides. */
export interface FakeCall {
  action: keyof TuiActions;
  args: unknown[];
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * TuiActions for component tests: every call is recorded and stays pending
 * until the test answers it, except those given a canned answer
 * (`answers`), e.g. defaults or logs. `events` pushes daemon events to the
 * current subscriber.
 */
export class FakeActions {
  readonly calls: FakeCall[] = [];
  readonly answers: Partial<{ [K in keyof TuiActions]: (...args: Parameters<TuiActions[K]>) => ReturnType<TuiActions[K]> }> = {};
  #onEvent: ((event: DaemonEvent) => void) | undefined;
  /** The create call's progress callback, to send stages from the test. */
  progress: ((event: ProgressEvent) => void) | undefined;

  readonly actions: TuiActions = {
    subscribe: (onEvent, signal) => {
      this.#onEvent = onEvent;
      return new Promise<void>((resolve) => {
        signal.addEventListener('abort', () => {
          resolve();
        });
      });
    },
    start: (vm) => this.#call<VmInfo>('start', [vm]),
    stop: (vm) => this.#call<VmInfo>('stop', [vm]),
    restart: (vm) => this.#call<VmInfo>('restart', [vm]),
    delete: (vm) => this.#call<VmInfo>('delete', [vm]),
    defaults: () => this.answers.defaults?.() ?? this.#call<VmDefaultsInfo>('defaults', []),
    create: (spec: CreateSpec, onProgress) => {
      this.progress = onProgress;
      return this.#call<VmInfo>('create', [spec]);
    },
    logs: (vm, lines) => this.answers.logs?.(vm, lines) ?? this.#call<string[]>('logs', [vm, lines]),
    exportPatch: (vm, path) => this.#call<ExportSummary>('exportPatch', [vm, path]),
    ssh: (vm) => this.#call<number>('ssh', [vm]),
  };

  emit(event: DaemonEvent): void {
    this.#onEvent?.(event);
  }

  /** The calls of one action, oldest first. */
  callsOf(action: keyof TuiActions): FakeCall[] {
    return this.calls.filter((call) => call.action === action);
  }

  #call<T>(action: keyof TuiActions, args: unknown[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.calls.push({ action, args, resolve: resolve as (value: unknown) => void, reject });
    });
  }
}
