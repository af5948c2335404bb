-- The repo prepared in a VM's guest (`vm workspace prepare`, `vm run <path>`):
-- JSON {guestPath, sourcePath, baseCommit, sourceHead, mode, branch,
-- includeUntracked, preparedAt}, or NULL when there is none. Durable intent:
-- it survives daemon restarts and drives `vm exec`'s working directory and
-- stale check, and `workspace export`'s default base.
ALTER TABLE vms ADD COLUMN workspace TEXT;
