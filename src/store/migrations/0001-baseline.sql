-- Baseline schema. Rows are durable intent: what a kernel, image or VM is.
-- Momentary reality (pids, tap devices, sockets) never lives here.
-- JSON `spec` columns hold each object's settings; `vms.slot` is the network
-- slot index from which a VM's IP address and tap name are derived.

CREATE TABLE kernels (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  state       TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
  source      TEXT NOT NULL CHECK (source IN ('catalog', 'import')),
  version     TEXT,
  spec        TEXT NOT NULL DEFAULT '{}',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);

CREATE TABLE images (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  state       TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
  source      TEXT NOT NULL,
  kernel_id   TEXT REFERENCES kernels (id) ON DELETE RESTRICT,
  spec        TEXT NOT NULL DEFAULT '{}',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE INDEX images_kernel_id ON images (kernel_id);

CREATE TABLE vms (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  state       TEXT NOT NULL CHECK (state IN ('created', 'starting', 'running', 'stopping', 'stopped', 'failed')),
  image_id    TEXT REFERENCES images (id) ON DELETE RESTRICT,
  slot        INTEGER UNIQUE,
  spec        TEXT NOT NULL DEFAULT '{}',
  last_error  TEXT,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE INDEX vms_image_id ON vms (image_id);
