import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { findExecutable } from '../../src/host/executables.js';
import { hostTscKhz } from '../../src/host/tsc.js';
import type { KernelInfo } from '../../src/rpc/methods.js';
import { probeAccel } from '../../src/vmm/qemu/accel-probe.js';
import { accelArgs } from '../../src/vmm/qemu/qemu-driver.js';
import { BangerWorld, collect } from '../integration/harness.js';

/**
 * Boots the real Debian cloud kernel with banger's initramfs under QEMU
 * (TCG here) and checks what the initramfs promises: an overlay root of a
 * read-only image and a per-VM upper disk, the work disk at /root, the
 * network address from the command line, and a hand-over to the image's init.
 */
describe('banger initramfs boots the catalog kernel (and answers the acceleration probe)', () => {
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

  function ext4(name: string, populate: (dir: string) => void): string {
    const dir = join(world.root, `${name}-tree`);
    mkdirSync(dir, { recursive: true });
    populate(dir);
    const image = join(world.root, `${name}.ext4`);
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', dir, image, '64M'], { stdio: 'pipe' });
    return image;
  }

  test('overlay root, work disk at /root, static IP, then the image init', async () => {
    const busybox = findExecutable('busybox');
    assert.ok(busybox !== undefined, 'busybox-static is installed');
    const lower = ext4('lower', (dir) => {
      for (const sub of ['bin', 'sbin', 'root', 'dev', 'proc', 'sys', 'etc']) mkdirSync(join(dir, sub));
      copyFileSync(busybox, join(dir, 'bin', 'busybox'));
      writeFileSync(join(dir, 'etc', 'image-file'), 'from the image\n');
      const init = join(dir, 'sbin', 'init');
      writeFileSync(
        init,
        [
          '#!/bin/busybox sh',
          'B=/bin/busybox',
          '$B mount -t proc proc /proc',
          'echo "E2E root: $($B grep " / " /proc/mounts)"',
          'echo "E2E work: $($B grep " /root " /proc/mounts)"',
          'echo "E2E key: $($B cat /root/.ssh/authorized_keys) owner $($B stat -c %u /root/.ssh/authorized_keys)"',
          'echo "E2E upper-file: $($B cat /etc/vm-file) image-file: $($B cat /etc/image-file)"',
          'echo "E2E ip: $($B ip -4 addr show eth0 | $B grep -o "inet [0-9./]*")"',
          'echo "E2E write: $(echo changed > /etc/image-file && $B cat /etc/image-file)"',
          '$B poweroff -f',
        ].join('\n'),
      );
      chmodSync(init, 0o755);
    });
    const upper = ext4('upper', (dir) => {
      mkdirSync(join(dir, 'upper', 'etc'), { recursive: true });
      writeFileSync(join(dir, 'upper', 'etc', 'vm-file'), 'from the upper disk\n');
    });
    const work = ext4('work', (dir) => {
      mkdirSync(join(dir, '.ssh'), { mode: 0o700 });
      writeFileSync(join(dir, '.ssh', 'authorized_keys'), 'ssh-ed25519 AAAA test\n', { mode: 0o600 });
    });
    const lowerBefore = execFileSync('sha256sum', [lower], { encoding: 'utf8' }).split(' ')[0];

    const args = [
      ...['-M', 'microvm', '-accel', 'tcg,thread=multi', '-cpu', 'max', '-m', '256', '-smp', '1'],
      ...['-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-no-reboot'],
      ...['-kernel', kernel.files.vmlinux, '-initrd', kernel.files.initramfs],
      '-append',
      `console=ttyS0 panic=-1 quiet cryptomgr.notests ${tsc === undefined ? '' : `tsc_early_khz=${tsc}`} banger.root=/dev/vda banger.upper=/dev/vdb banger.work=/dev/vdc banger.ip=10.0.2.15/24 banger.gw=10.0.2.2 banger.init=systemd`,
      ...['-drive', `id=root,file=${lower},format=raw,if=none,readonly=on`, '-device', 'virtio-blk-device,drive=root'],
      ...['-drive', `id=upper,file=${upper},format=raw,if=none`, '-device', 'virtio-blk-device,drive=upper'],
      ...['-drive', `id=work,file=${work},format=raw,if=none`, '-device', 'virtio-blk-device,drive=work'],
      ...['-netdev', 'user,id=n0', '-device', 'virtio-net-device,netdev=n0'],
    ];
    const result = await collect(spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] }), 180_000);
    const console = result.stdout;
    assert.equal(result.code, 0, `qemu exited ${result.code}\n${console}\n${result.stderr}`);
    assert.match(console, /banger-init: root assembled, starting systemd init/);
    assert.match(console, /E2E root: overlay \/ overlay .*lowerdir=\/lower,upperdir=\/upper\/upper,workdir=\/upper\/work/);
    assert.match(console, /E2E work: \/dev\/vdc \/root ext4/);
    assert.match(console, /E2E key: ssh-ed25519 AAAA test owner 0/);
    assert.match(console, /E2E upper-file: from the upper disk image-file: from the image/);
    assert.match(console, /E2E ip: inet 10\.0\.2\.15\/24/);
    assert.match(console, /E2E write: changed/);
    const lowerAfter = execFileSync('sha256sum', [lower], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(lowerAfter, lowerBefore, 'the shared image stays byte-identical');
  });

  // The acceleration probe boots the same kernel and initramfs in probe mode.
  // These machines have no usable KVM, so it runs under TCG here (the KVM path
  // is the same code with other flags); a kernel that cannot boot, or one too
  // slow for the deadline, reads as unusable and leaves no process.

  test('a bootable kernel reaches userspace and says so', async () => {
    const ok = await probeAccel({
      binary: 'qemu-system-x86_64',
      accelArgs: accelArgs('tcg'),
      vmlinux: kernel.files.vmlinux,
      initramfs: kernel.files.initramfs,
      extraCmdline,
      timeoutMs: 60_000,
    });
    assert.equal(ok, true);
  });

  test('a kernel that cannot boot, or a deadline it cannot meet, reads as unusable', async () => {
    const notAKernel = join(world.root, 'not-a-kernel');
    writeFileSync(notAKernel, 'no kernel here');
    assert.equal(
      await probeAccel({
        binary: 'qemu-system-x86_64',
        accelArgs: accelArgs('tcg'),
        vmlinux: notAKernel,
        initramfs: kernel.files.initramfs,
        timeoutMs: 30_000,
      }),
      false,
    );
    assert.equal(
      await probeAccel({
        binary: 'qemu-system-x86_64',
        accelArgs: accelArgs('tcg'),
        vmlinux: kernel.files.vmlinux,
        initramfs: kernel.files.initramfs,
        extraCmdline,
        timeoutMs: 50,
      }),
      false,
    );
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
