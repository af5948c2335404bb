import type { Store } from './database.js';
import { nowIso } from './records.js';

/** What an image is (durable). */
export interface ImageSpec {
  /**
   * Where the root filesystem lives. Managed images (pulled or promoted) keep
   * it in their own directory; a registered image points at the user's file,
   * which must stay where it is.
   */
  rootfs: string;
  managed: boolean;
  sizeBytes: number;
  /** Catalog images: suite and packages they were built from. */
  recipe?: { suite: string; packages: string[]; mirror: string };
  /** Registry images: the reference pulled, the manifest digest it resolved to, and what `vm exec` applies. */
  oci?: { ref: string; digest: string; run: { env: string[]; workingDir: string | null; user: string | null } };
  /** Who answers SSH in the guest: the image's own sshd (default) or banger's bundled dropbear (registry images). */
  sshServer?: 'image' | 'banger';
}

export interface ImageRecord {
  id: string;
  name: string;
  state: 'pending' | 'ready' | 'failed';
  source: 'catalog' | 'register' | 'registry' | 'bundle';
  kernelId: string;
  spec: ImageSpec;
  createdAt: string;
  updatedAt: string;
}

interface ImageRow {
  id: string;
  name: string;
  state: ImageRecord['state'];
  source: ImageRecord['source'];
  kernel_id: string;
  spec: string;
  created_at: string;
  updated_at: string;
}

function fromRow(row: ImageRow): ImageRecord {
  return {
    id: row.id,
    name: row.name,
    state: row.state,
    source: row.source,
    kernelId: row.kernel_id,
    spec: JSON.parse(row.spec) as ImageSpec,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export class ImagesRepo {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  list(): ImageRecord[] {
    return (this.#store.db.prepare('SELECT * FROM images ORDER BY name').all() as ImageRow[]).map(fromRow);
  }

  getById(id: string): ImageRecord | undefined {
    const row = this.#store.db.prepare('SELECT * FROM images WHERE id = ?').get(id) as ImageRow | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  getByName(name: string): ImageRecord | undefined {
    const row = this.#store.db.prepare('SELECT * FROM images WHERE name = ?').get(name) as ImageRow | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  insert(image: Omit<ImageRecord, 'createdAt' | 'updatedAt'>): ImageRecord {
    const now = nowIso();
    this.#store.write((db) =>
      db
        .prepare('INSERT INTO images (id, name, state, source, kernel_id, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(image.id, image.name, image.state, image.source, image.kernelId, JSON.stringify(image.spec), now, now),
    );
    return { ...image, createdAt: now, updatedAt: now };
  }

  updateSpec(id: string, spec: ImageSpec): void {
    this.#store.write((db) => db.prepare('UPDATE images SET spec = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(spec), nowIso(), id));
  }

  /** Removes `oldId` and inserts `image` in one transaction (a newer pull of the same name). */
  replace(oldId: string, image: Omit<ImageRecord, 'createdAt' | 'updatedAt'>): ImageRecord {
    const now = nowIso();
    this.#store.write((db) => {
      db.transaction(() => {
        db.prepare('DELETE FROM images WHERE id = ?').run(oldId);
        db.prepare('INSERT INTO images (id, name, state, source, kernel_id, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
          image.id,
          image.name,
          image.state,
          image.source,
          image.kernelId,
          JSON.stringify(image.spec),
          now,
          now,
        );
      })();
    });
    return { ...image, createdAt: now, updatedAt: now };
  }

  delete(id: string): void {
    this.#store.write((db) => db.prepare('DELETE FROM images WHERE id = ?').run(id));
  }

  /** Names of VMs created from this image (deleting it is refused while any exist). */
  vmsUsing(id: string): string[] {
    return (this.#store.db.prepare('SELECT name FROM vms WHERE image_id = ? ORDER BY name').all(id) as { name: string }[]).map((r) => r.name);
  }
}
