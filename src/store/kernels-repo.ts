import type { Store } from './database.js';
import { nowIso } from './records.js';

/** What a kernel is (durable); files live in the kernel's directory under the state dir. */
export interface KernelSpec {
  /** `uname -r` of the kernel, e.g. 6.1.0-56-cloud-amd64; undefined for imports that do not say. */
  release?: string;
  /** Catalog kernels: the Debian package and its verified sha256. */
  package?: { name: string; version: string; sha256: string; url: string };
  /** Modules baked into the initramfs, in load order. */
  modules: string[];
  /** sha256 of banger's guest init script the initramfs was built with. */
  initHash: string;
}

export interface KernelRecord {
  id: string;
  name: string;
  state: 'pending' | 'ready' | 'failed';
  source: 'catalog' | 'import';
  version: string | null;
  spec: KernelSpec;
  createdAt: string;
  updatedAt: string;
}

interface KernelRow {
  id: string;
  name: string;
  state: KernelRecord['state'];
  source: KernelRecord['source'];
  version: string | null;
  spec: string;
  created_at: string;
  updated_at: string;
}

function fromRow(row: KernelRow): KernelRecord {
  return {
    id: row.id,
    name: row.name,
    state: row.state,
    source: row.source,
    version: row.version,
    spec: JSON.parse(row.spec) as KernelSpec,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export class KernelsRepo {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  list(): KernelRecord[] {
    return (this.#store.db.prepare('SELECT * FROM kernels ORDER BY name').all() as KernelRow[]).map(fromRow);
  }

  getByName(name: string): KernelRecord | undefined {
    const row = this.#store.db.prepare('SELECT * FROM kernels WHERE name = ?').get(name) as KernelRow | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  getById(id: string): KernelRecord | undefined {
    const row = this.#store.db.prepare('SELECT * FROM kernels WHERE id = ?').get(id) as KernelRow | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  insert(kernel: Omit<KernelRecord, 'createdAt' | 'updatedAt'>): KernelRecord {
    const now = nowIso();
    this.#store.write((db) =>
      db
        .prepare('INSERT INTO kernels (id, name, state, source, version, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(kernel.id, kernel.name, kernel.state, kernel.source, kernel.version, JSON.stringify(kernel.spec), now, now),
    );
    return { ...kernel, createdAt: now, updatedAt: now };
  }

  updateSpec(id: string, spec: KernelSpec): void {
    this.#store.write((db) => db.prepare('UPDATE kernels SET spec = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(spec), nowIso(), id));
  }

  delete(id: string): void {
    this.#store.write((db) => db.prepare('DELETE FROM kernels WHERE id = ?').run(id));
  }

  /** Names of images that use this kernel (deleting it is refused while any do). */
  imagesUsing(id: string): string[] {
    return (this.#store.db.prepare('SELECT name FROM images WHERE kernel_id = ? ORDER BY name').all(id) as { name: string }[]).map((r) => r.name);
  }
}
