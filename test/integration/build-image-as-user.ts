/**
 * Builds the catalog image exactly as the daemon does (resolveBuildHost,
 * buildDebianRoot, packExt4), outside any daemon, so a test can run it as
 * an ordinary user (`setpriv … node dist/test/integration/build-image-as-user.js`).
 *
 *   build-image-as-user.js <mirror> <apt-cache-dir> <out-dir>
 *
 * Writes <out-dir>/rootfs.tar and <out-dir>/rootfs.ext4 and prints one JSON
 * line: `{"ok":true,"sizeBytes":…,"bootstrapMs":…,"packMs":…}`, or
 * `{"ok":false,"code":…,"message":…}` (exit 2) when the build fails. SIGTERM
 * cancels the build through its OpContext signal, as a client disconnect does.
 */
import { join } from 'node:path';

import { pino } from 'pino';

import { toBangerError } from '../../src/rpc/errors.js';
import { resolveBuildHost } from '../../src/services/image/build-namespace.js';
import { findCatalogImage } from '../../src/services/image/catalog.js';
import { packExt4 } from '../../src/services/image/ext4-pack.js';
import { buildDebianRoot } from '../../src/services/image/rootfs-builder.js';
import type { OpContext } from '../../src/services/op-context.js';

const [mirror, aptCache, outDir] = process.argv.slice(2);
if (mirror === undefined || aptCache === undefined || outDir === undefined) {
  console.error('usage: build-image-as-user.js <mirror> <apt-cache-dir> <out-dir>');
  process.exit(64);
}
const entry = findCatalogImage('debian-bookworm');
if (entry === undefined) throw new Error('debian-bookworm is not in the catalog');

const controller = new AbortController();
process.on('SIGTERM', () => {
  controller.abort(new Error('cancelled by SIGTERM'));
});
const ctx: OpContext = {
  opId: 'op_build_as_user',
  signal: controller.signal,
  log: pino({ level: 'warn' }, pino.destination(2)),
  progress: (stage, detail) => {
    process.stderr.write(`[${stage}] ${detail}\n`);
  },
};

try {
  const host = resolveBuildHost();
  const started = Date.now();
  await buildDebianRoot(entry, mirror, join(outDir, 'rootfs.tar'), aptCache, host, ctx);
  const packStarted = Date.now();
  const sizeBytes = await packExt4(join(outDir, 'rootfs.tar'), join(outDir, 'rootfs.ext4'), host, ctx);
  console.log(JSON.stringify({ ok: true, sizeBytes, bootstrapMs: packStarted - started, packMs: Date.now() - packStarted }));
} catch (error) {
  const failure = toBangerError(error);
  console.log(JSON.stringify({ ok: false, code: controller.signal.aborted ? 'ERR_CANCELLED' : failure.code, message: failure.message }));
  process.exitCode = 2;
}
