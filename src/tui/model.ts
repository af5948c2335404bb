import { toBangerError } from '../rpc/errors.js';
import type { DaemonEvent, VmInfo, VmStatsSample } from '../rpc/methods.js';

/**
 * The TUI's state, with no ink or React in it: the VM table as the daemon's
 * event stream describes it, which row is selected, and the status line.
 * `reduce` is the only way it changes, so it is tested without a terminal.
 */

/** One VM as the table shows it: its record and its latest resource sample (running VMs only). */
export interface VmRow {
  vm: VmInfo;
  sample: VmStatsSample | null;
}

/** The line under the table: what an action is doing, what it did, or what went wrong (with the error's hint). */
export interface Status {
  kind: 'busy' | 'info' | 'error';
  text: string;
  hint?: string | undefined;
}

/** The status line's form of an action's failure: the error's code and message, and its hint. */
export function errorStatus(error: unknown): Status {
  // One BangerError class: the lazily loaded TUI bundle takes banger's modules from the CLI bundle (scripts/build.mjs).
  const banger = toBangerError(error);
  return { kind: 'error', text: `error[${banger.code}]: ${banger.message}`, hint: banger.hint };
}

export interface TuiModel {
  /** Oldest first (by createdAt, then name), as `vm list` orders them. */
  rows: readonly VmRow[];
  /** The selected VM's id; null selects the first row. */
  selectedId: string | null;
  status: Status | null;
  /** `lost` once the event stream has failed: the table then shows the last known state. */
  stream: 'live' | 'lost';
}

export type TuiAction =
  | { type: 'event'; event: DaemonEvent }
  | { type: 'move'; by: number }
  | { type: 'status'; status: Status | null }
  | { type: 'streamLost'; status: Status };

export const initialModel: TuiModel = { rows: [], selectedId: null, status: null, stream: 'live' };

export function reduce(model: TuiModel, action: TuiAction): TuiModel {
  switch (action.type) {
    case 'event':
      return applyEvent(model, action.event);
    case 'move': {
      if (model.rows.length === 0) return model;
      const index = Math.min(model.rows.length - 1, Math.max(0, selectedIndex(model) + action.by));
      return { ...model, selectedId: model.rows[index]?.vm.id ?? null };
    }
    case 'status':
      return { ...model, status: action.status };
    case 'streamLost':
      return { ...model, stream: 'lost', status: action.status };
  }
}

function applyEvent(model: TuiModel, event: DaemonEvent): TuiModel {
  switch (event.kind) {
    case 'vm.changed': {
      const existing = model.rows.find((row) => row.vm.id === event.vm.id);
      // A sample describes a running VM; once it is not running, its CPU and memory are gone.
      const sample = event.vm.state === 'running' ? (event.vm.stats ?? existing?.sample ?? null) : null;
      const others = model.rows.filter((row) => row.vm.id !== event.vm.id);
      return { ...model, rows: sortRows([...others, { vm: event.vm, sample }]) };
    }
    case 'vm.deleted': {
      const index = model.rows.findIndex((row) => row.vm.id === event.vm.id);
      if (index < 0) return model;
      const rows = model.rows.filter((row) => row.vm.id !== event.vm.id);
      // The selection moves to the row that took the deleted one's place (or the new last row).
      const selectedId = model.selectedId === event.vm.id ? (rows[Math.min(index, rows.length - 1)]?.vm.id ?? null) : model.selectedId;
      return { ...model, rows, selectedId };
    }
    case 'vm.stats': {
      const row = model.rows.find((r) => r.vm.id === event.vm.id);
      // A sample for a VM the table does not know (or no longer shows as running) is late: its vm.changed comes first.
      if (row?.vm.state !== 'running') return model;
      return { ...model, rows: model.rows.map((r) => (r === row ? { ...r, sample: event.sample } : r)) };
    }
  }
}

function sortRows(rows: VmRow[]): VmRow[] {
  return rows.sort((a, b) => a.vm.createdAt.localeCompare(b.vm.createdAt) || a.vm.name.localeCompare(b.vm.name));
}

/** Index of the selected row (0 when nothing is selected yet or the selected VM is gone). */
export function selectedIndex(model: TuiModel): number {
  const index = model.rows.findIndex((row) => row.vm.id === model.selectedId);
  return index < 0 ? 0 : index;
}

export function selectedRow(model: TuiModel): VmRow | undefined {
  return model.rows[selectedIndex(model)];
}

/** A minimal store around `reduce` for React's useSyncExternalStore; it outlives the ink app (which is unmounted for `vm ssh`). */
export class TuiStore {
  #model: TuiModel;
  readonly #listeners = new Set<() => void>();

  constructor(model: TuiModel = initialModel) {
    this.#model = model;
  }

  readonly getModel = (): TuiModel => this.#model;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  readonly dispatch = (action: TuiAction): void => {
    const next = reduce(this.#model, action);
    if (next === this.#model) return;
    this.#model = next;
    for (const listener of this.#listeners) listener();
  };
}
