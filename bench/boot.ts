/**
 * bench/boot: how much does banger add to booting a VM?
 *
 * Measures, in one process on this host:
 *   baseline  raw QEMU (the exact command line banger uses, same kernel,
 *             image and disks), from spawn until `ssh root@guest true` succeeds
 *   banger    `banger vm run --rm -- true`, end to end (create, boot, SSH
 *             readiness, the command, delete)
 * and prints the medians and their ratio. Run: npm run bench:boot [-- runs]
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { loadConfig } from '../src/config/load.js';
import { slotNetwork } from '../src/services/network/slot.js';
import { InProcessOps } from '../src/root-helper/privileged-ops.js';
import { tapName } from '../src/root-helper/policy.js';
import type { VmInfo, KernelInfo, ImageInfo } from '../src/rpc/methods.js';
import { QemuDriver } from '../src/vmm/qemu/qemu-driver.js';
import { detectKvm } from '../src/host/kvm.js';
import { BangerWorld } from '../test/integration/harness.js';
import { median, sshCommand } from './helpers.js';

const runs = Number(process.argv[2] ?? '3');

async function sshTrue(host: string, key: string, knownHosts: string): Promise<boolean> {
  const [program = 'ssh', ...args] = sshCommand(host, key, knownHosts, 'true', { connectTimeoutSeconds: 2 });
  const result = spawnSync(program, args, { stdio: 'ignore' });
  await Promise.resolve();
  return result.status === 0;
}

async function main(): Promise<void> {
  const world = new BangerWorld({ sharedDownloads: true, network: true });
  try {
    console.log('preparing: pulling kernel and image (cached after the first run)...');
    await world.json(['image', 'pull', 'debian-bookworm'], { timeoutMs: 900_000 });
    const vm = await world.json<VmInfo>(['vm', 'create', '--name', 'bench-base', '--no-start']);
    const image = await world.json<ImageInfo>(['image', 'show', 'debian-bookworm']);
    const kernel = await world.json<KernelInfo>(['kernel', 'show', image.kernel.id]);
    const config = loadConfig(world.layout.configFile, world.env.HOME ?? '/');
    const net = slotNetwork(config.network, 1);
    // The baseline's tap is made the way banger makes it (the bench runs as root).
    const ops = new InProcessOps({ uid: 0, gid: 0, bridge: config.network.bridge, subnet: config.network.subnet });
    const tap = tapName(config.network.bridge, 900);
    await ops.ensureBridge(config.network.bridge, config.network.dnsPort);
    const accel = detectKvm().kind === 'usable' ? 'kvm' : 'tcg';
    const driver = new QemuDriver({ binary: 'qemu-system-x86_64', accel });
    const vmDir = join(world.layout.vmsDir, vm.id);
    const sandbox = (await driver.sandboxSupport()).supported;
    const args = driver.args(
      {
        vmId: vm.id,
        vcpu: vm.spec.vcpu,
        memoryMiB: vm.spec.memoryMiB,
        kernel: { vmlinux: kernel.files.vmlinux, initramfs: kernel.files.initramfs },
        disks: { image: image.rootfs, upper: join(vmDir, 'upper.ext4'), work: join(vmDir, 'work.ext4') },
        net: { tap, mac: net.mac, guestIp: net.guestIp, prefix: net.prefix, gatewayIp: net.gatewayIp },
        init: 'minimal',
        vmDir,
        runDir: join(world.root, 'bench-run'),
      },
      { sandbox },
    );
    spawnSync('mkdir', ['-p', join(world.root, 'bench-run')]);

    const baseline: number[] = [];
    for (let i = 0; i < runs; i++) {
      await ops.createTap(tap, 0);
      await ops.attachTap(tap, net.guestIp, net.mac, 'isolated'); // a tap sends only as the VM bound to it
      const started = performance.now();
      const qemu = spawn('qemu-system-x86_64', args, { stdio: 'ignore' });
      while (!(await sshTrue(net.guestIp, world.layout.sshKey, join(world.root, 'bench-known-hosts')))) {
        if (performance.now() - started > 180_000) throw new Error('the baseline VM did not answer SSH within 180 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      baseline.push(performance.now() - started);
      qemu.kill('SIGKILL');
      await new Promise((r) => qemu.on('close', r));
      await ops.deleteTap(tap);
    }
    await world.json(['vm', 'delete', 'bench-base']);

    const banger: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      const result = await world.run(['vm', 'run', '--rm', '--', 'true'], { timeoutMs: 300_000 });
      if (result.code !== 0) throw new Error(`vm run failed: ${result.stderr}`);
      banger.push(performance.now() - started);
    }

    const b = median(baseline);
    const v = median(banger);
    console.log(`accel: ${accel}, runs: ${runs}`);
    console.log(`baseline raw qemu spawn -> ssh true:  median ${(b / 1000).toFixed(2)} s  (${baseline.map((x) => (x / 1000).toFixed(2)).join(', ')})`);
    console.log(`banger vm run --rm -- true:           median ${(v / 1000).toFixed(2)} s  (${banger.map((x) => (x / 1000).toFixed(2)).join(', ')})`);
    console.log(`ratio banger / baseline: ${(v / b).toFixed(2)}`);
  } finally {
    world.close();
  }
}

await main();
