import { BangerError } from '../rpc/errors.js';
import type { WorkspaceInfo } from '../rpc/methods.js';
import type { Store } from './database.js';
import { nowIso } from './records.js';

export type VmState = 'creating' | 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
export type InitMode = 'minimal' | 'systemd';

/** What a VM is (durable intent). Pids, taps and sockets are not here: see handles. */
export interface VmSpec {
  vcpu: number;
  memoryMiB: number;
  diskSizeBytes: number;
  init: InitMode;
  /** Whether the guest reaches beyond the host (masqueraded); changeable while it runs. */
  nat: boolean;
  /** isolated: reaches no other guest; shared: reaches the other guests on the shared network. */
  network: VmNetwork;
}

export type VmNetwork = 'isolated' | 'shared';

/** Defaults for spec fields added after a VM was created (its stored JSON lacks them). */
const SPEC_DEFAULTS: Pick<VmSpec, 'nat' | 'network'> = { nat: false, network: 'isolated' };

export interface VmRecord {
  id: string;
  name: string;
  state: VmState;
  imageId: string;
  slot: number;
  spec: VmSpec;
  lastError: string | null;
  /** The repo prepared in the guest, if any. */
  workspace: WorkspaceInfo | null;
  createdAt: string;
  updatedAt: string;
}

interface VmRow {
  id: string;
  name: string;
  state: VmState;
  image_id: string;
  slot: number;
  spec: string;
  last_error: string | null;
  workspace: string | null;
  created_at: string;
  updated_at: string;
}

function fromRow(row: VmRow): VmRecord {
  return {
    id: row.id,
    name: row.name,
    state: row.state,
    imageId: row.image_id,
    slot: row.slot,
    spec: { ...SPEC_DEFAULTS, ...(JSON.parse(row.spec) as Partial<VmSpec>) } as VmSpec,
    lastError: row.last_error,
    workspace: row.workspace === null ? null : (JSON.parse(row.workspace) as WorkspaceInfo),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * Told about every change to the vms table, after it is written: the one
 * place VM events come from (see the daemon's event bus), so no transition,
 * whoever makes it (lifecycle, reconcile, workspaces), goes unannounced.
 * It must not throw.
 */
export interface VmsObserver {
  changed(id: string): void;
  deleted(vm: { id: string; name: string }): void;
}

export class VmsRepo {
  readonly #store: Store;
  readonly #observer: VmsObserver | undefined;

  constructor(store: Store, observer?: VmsObserver) {
    this.#store = store;
    this.#observer = observer;
  }

  list(): VmRecord[] {
    return (this.#store.db.prepare('SELECT * FROM vms ORDER BY created_at, name').all() as VmRow[]).map(fromRow);
  }

  get(id: string): VmRecord | undefined {
    const row = this.#store.db.prepare('SELECT * FROM vms WHERE id = ?').get(id) as VmRow | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  /**
   * Claims a name and the lowest free slot in one transaction. The name check
   * is an exact match (a new name may prefix an existing one: "beta" next to
   * "beta-sandbox" is fine). The row starts as 'creating': the caller moves
   * it to 'created' once the VM's files exist.
   */
  reserve(vm: { id: string; name: string; imageId: string; spec: VmSpec }, maxSlot: number): VmRecord {
    const reserved = this.#store.write((db) => {
      if (db.prepare('SELECT 1 FROM vms WHERE name = ?').get(vm.name) !== undefined) {
        throw new BangerError('ERR_ALREADY_EXISTS', `a VM named "${vm.name}" already exists`, { hint: 'pick another --name, or delete the old VM' });
      }
      const used = new Set((db.prepare('SELECT slot FROM vms').all() as { slot: number }[]).map((r) => r.slot));
      let slot = 1;
      while (used.has(slot)) slot++;
      if (slot > maxSlot) {
        throw new BangerError('ERR_INVALID_ARGUMENT', `no free address left in the VM subnet (${maxSlot} VMs)`, {
          hint: 'delete VMs you no longer need, or configure a larger [network] subnet',
        });
      }
      const now = nowIso();
      db.prepare('INSERT INTO vms (id, name, state, image_id, slot, spec, last_error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)').run(
        vm.id,
        vm.name,
        'creating',
        vm.imageId,
        slot,
        JSON.stringify(vm.spec),
        now,
        now,
      );
      return { ...vm, state: 'creating' as const, slot, lastError: null, workspace: null, createdAt: now, updatedAt: now };
    });
    this.#observer?.changed(reserved.id);
    return reserved;
  }

  setState(id: string, state: VmState, lastError: string | null = null): void {
    this.#store.write((db) => db.prepare('UPDATE vms SET state = ?, last_error = ?, updated_at = ? WHERE id = ?').run(state, lastError, nowIso(), id));
    this.#observer?.changed(id);
  }

  setSpec(id: string, spec: VmSpec): void {
    this.#store.write((db) => db.prepare('UPDATE vms SET spec = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(spec), nowIso(), id));
    this.#observer?.changed(id);
  }

  /** Records (or, with null, forgets) the VM's workspace. */
  setWorkspace(id: string, workspace: WorkspaceInfo | null): void {
    this.#store.write((db) =>
      db.prepare('UPDATE vms SET workspace = ?, updated_at = ? WHERE id = ?').run(workspace === null ? null : JSON.stringify(workspace), nowIso(), id),
    );
    this.#observer?.changed(id);
  }

  delete(id: string): void {
    const name = this.#observer === undefined ? undefined : this.get(id)?.name;
    const { changes } = this.#store.write((db) => db.prepare('DELETE FROM vms WHERE id = ?').run(id));
    if (changes > 0 && name !== undefined) this.#observer?.deleted({ id, name });
  }
}
