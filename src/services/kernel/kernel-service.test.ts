import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { pino } from 'pino';

import { resolveLayout, type Layout } from '../../config/paths.js';
import { BangerError } from '../../rpc/errors.js';
import { openStore } from '../../store/database.js';
import { KernelsRepo } from '../../store/kernels-repo.js';
import { makeTestKey, packageStanza, publishSuite, serveMirror, sha256 } from '../../../test/helpers/debian-archive.js';
import type { OpContext } from '../op-context.js';
import { KernelService } from './kernel-service.js';

/**
 * KernelService pulls against a local signed archive (a throwaway key, the
 * real gpgv): a .deb that does not match its index, and pulls of one name
 * that join while their callers cancel. The catalog kernel is looked up at
 * `<mirror>/debian` and `<mirror>/debian-security`, as from a real mirror.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-kernels-'));
const key = makeTestKey(root);
const mirror = await serveMirror();
after(() => {
  mirror.close();
  key.dispose();
  rmSync(root, { recursive: true, force: true });
});

const KERNEL = 'debian-bookworm-cloud';
const IMAGE_PACKAGE = 'linux-image-6.1.0-99-cloud-amd64';
const VERSION = '6.1.999-1';

let worlds = 0;
/** A service over a fresh store, reading the archive at `<mirror>/<prefix>`. */
function setup(prefix: string): { service: KernelService; layout: Layout } {
  const dir = join(root, `world-${++worlds}`);
  const layout = resolveLayout({ env: { XDG_STATE_HOME: join(dir, 'state'), XDG_CACHE_HOME: join(dir, 'cache') }, uid: 0, home: dir });
  mkdirSync(layout.stateDir, { recursive: true });
  const service = new KernelService({
    layout,
    kernels: new KernelsRepo(openStore(layout.storePath)),
    mirror: `${mirror.url}/${prefix}/debian`,
    env: {},
    keyring: key.keyring,
  });
  return { service, layout };
}

function caller(): { ctx: OpContext; cancel: (why: string) => void; stages: string[] } {
  const controller = new AbortController();
  const stages: string[] = [];
  return {
    ctx: { opId: 'op_test', signal: controller.signal, log: pino({ level: 'silent' }), progress: (stage) => stages.push(stage) },
    cancel: (why) => {
      controller.abort(new BangerError('ERR_CANCELLED', why));
    },
    stages,
  };
}

/** Whether `promise` has settled once pending callbacks have run (a cancel answers without waiting on anything). */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  const settle = (): void => {
    settled = true;
  };
  promise.then(settle, settle);
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

const hasCode = (code: string, message: RegExp) => (error: unknown) => error instanceof BangerError && error.code === code && message.test(error.message);

test('a kernel package whose sha256 differs from the signed index is refused, leaving nothing cached or staged', async () => {
  const genuine = Buffer.from('the .deb the index was signed for');
  const served = Buffer.from('a different .deb from a bad mirror');
  const filename = `pool/main/l/linux-signed-amd64/${IMAGE_PACKAGE}_${VERSION}_amd64.deb`;
  publishSuite(mirror, key, '/bad-deb/debian', 'bookworm', [
    packageStanza('linux-image-cloud-amd64', VERSION, 'pool/main/l/meta.deb', Buffer.from('meta'), `${IMAGE_PACKAGE} (= ${VERSION})`),
    packageStanza(IMAGE_PACKAGE, VERSION, filename, genuine),
  ]);
  publishSuite(mirror, key, '/bad-deb/debian-security', 'bookworm-security', []);
  mirror.files.set(`/bad-deb/debian/${filename}`, served);
  const { service, layout } = setup('bad-deb');

  await assert.rejects(
    service.pull(KERNEL, caller().ctx),
    hasCode('ERR_VERIFY_FAILED', new RegExp(`has sha256 ${sha256(served)}, expected ${sha256(genuine)}`)),
  );
  assert.ok(mirror.requests.includes(`/bad-deb/debian/${filename}`));
  assert.deepEqual(service.list(), []);
  // Only the two verified Packages indexes are cached: no .deb, no partial download.
  const cached = readdirSync(layout.downloadsDir);
  assert.equal(cached.length, 2);
  assert.ok(cached.every((name) => /^sha256-[0-9a-f]{64}$/.test(name)));
  assert.ok(!cached.includes(`sha256-${sha256(genuine)}`));
  assert.ok(!existsSync(layout.kernelsDir) || readdirSync(layout.kernelsDir).length === 0);
});

/**
 * Holds the next request for `path` unanswered. `arrived` resolves with its
 * response once it is in; `closed` resolves when the client drops it.
 */
function holdRequest(path: string): { arrived: Promise<ServerResponse>; closed: Promise<void> } {
  let onArrive!: (res: ServerResponse) => void;
  const arrived = new Promise<ServerResponse>((resolve) => (onArrive = resolve));
  let onClose!: () => void;
  const closed = new Promise<void>((resolve) => (onClose = resolve));
  mirror.files.set(path, (_req, res) => {
    res.on('close', onClose);
    onArrive(res);
  });
  return { arrived, closed };
}

/** Answers a held request with a 404: the pull that made it then fails with ERR_DOWNLOAD_FAILED, not a cancel. */
function answer404(res: ServerResponse): void {
  res.statusCode = 404;
  res.end();
}

test("a joiner's cancel answers it at once while the first caller's pull goes on", async () => {
  const held = holdRequest('/join1/debian/dists/bookworm/InRelease');
  const { service } = setup('join1');
  const leader = caller();
  const joiner = caller();
  const first = service.pull(KERNEL, leader.ctx);
  const second = service.pull(KERNEL, joiner.ctx);
  assert.deepEqual(joiner.stages, ['wait']);
  const res = await held.arrived;
  joiner.cancel('joiner interrupted');
  assert.equal(await settledNow(second), true, "the joiner's pull answers its cancel without waiting for the download");
  await assert.rejects(second, hasCode('ERR_CANCELLED', /joiner interrupted/));
  // The leader sees the mirror's answer: the shared download was not cancelled with the joiner.
  answer404(res);
  await assert.rejects(first, hasCode('ERR_DOWNLOAD_FAILED', /HTTP 404/));
});

test("the first caller's cancel does not cancel the pull a joiner is waiting on", async () => {
  const held = holdRequest('/join2/debian/dists/bookworm/InRelease');
  const { service } = setup('join2');
  const leader = caller();
  const joiner = caller();
  const first = service.pull(KERNEL, leader.ctx);
  const second = service.pull(KERNEL, joiner.ctx);
  const res = await held.arrived;
  leader.cancel('leader interrupted');
  await assert.rejects(first, hasCode('ERR_CANCELLED', /leader interrupted/));
  answer404(res);
  // The joiner sees the pull's own outcome, not the leader's cancel.
  await assert.rejects(second, hasCode('ERR_DOWNLOAD_FAILED', /HTTP 404/));
});

test('once every caller has cancelled, the download is dropped', async () => {
  const held = holdRequest('/join3/debian/dists/bookworm/InRelease');
  const { service, layout } = setup('join3');
  const a = caller();
  const b = caller();
  const first = service.pull(KERNEL, a.ctx);
  const second = service.pull(KERNEL, b.ctx);
  await held.arrived;
  a.cancel('a interrupted');
  await assert.rejects(first, hasCode('ERR_CANCELLED', /a interrupted/));
  b.cancel('b interrupted');
  await assert.rejects(second, hasCode('ERR_CANCELLED', /b interrupted/));
  // The mirror sees the request go away: nobody is left to want it.
  await held.closed;
  assert.deepEqual(service.list(), []);
  assert.ok(!existsSync(layout.kernelsDir) || readdirSync(layout.kernelsDir).length === 0);
});

test('import refuses paths that are not a kernel file and a module dir before reading or creating anything', async () => {
  const { service, layout } = setup('unused');
  const dir = join(root, 'import-paths');
  mkdirSync(dir);
  const file = join(dir, 'vmlinuz');
  writeFileSync(file, 'not a kernel');
  const refused: [string, string, string | undefined, RegExp][] = [
    ['ERR_INVALID_ARGUMENT', dir, undefined, /\(the kernel image\) is a directory, not a regular file$/],
    ['ERR_INVALID_ARGUMENT', '/dev/zero', undefined, /^\/dev\/zero \(the kernel image\) is a device, not a regular file$/],
    ['ERR_INVALID_ARGUMENT', file, file, /\(the module tree\) is a regular file, not a directory$/],
    ['ERR_NOT_FOUND', join(dir, 'missing'), undefined, /does not exist$/],
    ['ERR_NOT_FOUND', file, join(dir, 'missing'), /does not exist$/],
    ['ERR_NOT_FOUND', join(file, 'below-a-file'), undefined, /does not exist$/],
  ];
  for (const [code, kernel, modules, message] of refused) {
    await assert.rejects(service.import('fresh', kernel, modules, caller().ctx), hasCode(code, message), `${kernel} ${modules ?? ''}`);
  }
  await assert.rejects(service.import('Fresh', file, undefined, caller().ctx), hasCode('ERR_INVALID_ARGUMENT', /^"Fresh" is not a valid kernel name$/));
  assert.equal(existsSync(layout.kernelsDir), false, 'no kernels dir was made');
  // A regular file gets as far as the build, which fails; that first failed import leaves no kernels dir either.
  await assert.rejects(service.import('fresh', file, undefined, caller().ctx), hasCode('ERR_INVALID_ARGUMENT', /cannot extract vmlinux/));
  assert.equal(existsSync(layout.kernelsDir), false, 'no empty kernels dir is left');
});
