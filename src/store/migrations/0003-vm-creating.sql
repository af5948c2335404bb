-- A VM row is 'creating' from its reservation until its disks are built, so a
-- daemon that died half-way through a create leaves a row startup can tell
-- apart (and remove) from a finished `vm create --no-start` ('created').
-- SQLite cannot alter a CHECK constraint: the table is rebuilt with the same
-- columns and rows.
CREATE TABLE vms_new (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  state       TEXT NOT NULL CHECK (state IN ('creating', 'created', 'starting', 'running', 'stopping', 'stopped', 'failed')),
  image_id    TEXT REFERENCES images (id) ON DELETE RESTRICT,
  slot        INTEGER UNIQUE,
  spec        TEXT NOT NULL DEFAULT '{}',
  last_error  TEXT,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  workspace   TEXT
);
INSERT INTO vms_new (id, name, state, image_id, slot, spec, last_error, created_at, updated_at, workspace)
  SELECT id, name, state, image_id, slot, spec, last_error, created_at, updated_at, workspace FROM vms;
DROP TABLE vms;
ALTER TABLE vms_new RENAME TO vms;
CREATE INDEX vms_image_id ON vms (image_id);
