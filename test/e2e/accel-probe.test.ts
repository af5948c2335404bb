import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { KernelInfo } from '../../src/rpc/methods.js';
import { probeAccel } from '../../src/vmm/qemu/accel-probe.js';
import { accelArgs } from '../../src/vmm/qemu/qemu-driver.js';
import { hostTscKhz } from '../../src/host/tsc.js';
import { BangerWorld } from '../integration/harness.js';

/**
 * The acceleration probe boots the real kernel and initramfs in probe mode.
 * These machines have no usable KVM, so it runs under TCG here (the KVM path
 * is the same code with other flags); a kernel that cannot boot, or one that
 * is too slow for the deadline, reads as "not usable" and leaves no process.
 */
describe('acceleration probe', () => {
  let world: BangerWorld;
  let kernel: KernelInfo;
  before(async () => {
    world = new BangerWorld({ sharedDownloads: true });
    kernel = await world.pullCatalogKernel();
  });
  after(() => {
    world.close();
  });

  const tsc = hostTscKhz();
  const extraCmdline = tsc === undefined ? [] : [`tsc_early_khz=${tsc}`];

  test('a bootable kernel reaches userspace and says so', async () => {
    const ok = await probeAccel({ binary: 'qemu-system-x86_64', accelArgs: accelArgs('tcg'), vmlinux: kernel.files.vmlinux, initramfs: kernel.files.initramfs, extraCmdline, timeoutMs: 60_000 });
    assert.equal(ok, true);
  });

  test('a kernel that cannot boot, or a deadline it cannot meet, reads as unusable', async () => {
    const notAKernel = join(world.root, 'not-a-kernel');
    writeFileSync(notAKernel, 'no kernel here');
    assert.equal(await probeAccel({ binary: 'qemu-system-x86_64', accelArgs: accelArgs('tcg'), vmlinux: notAKernel, initramfs: kernel.files.initramfs, timeoutMs: 30_000 }), false);
    assert.equal(await probeAccel({ binary: 'qemu-system-x86_64', accelArgs: accelArgs('tcg'), vmlinux: kernel.files.vmlinux, initramfs: kernel.files.initramfs, extraCmdline, timeoutMs: 50 }), false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const probes = readdirSync('/proc').filter((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(kernel.files.vmlinux);
      } catch {
        return false;
      }
    });
    assert.deepEqual(probes, [], 'the timed-out probe was killed');
  });
});
