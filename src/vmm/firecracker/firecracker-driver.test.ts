import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import type { LaunchSpec } from '../driver.js';
import { FirecrackerApi } from './api-client.js';
import { API_SOCKET, FirecrackerDriver, MIN_FIRECRACKER_VERSION, versionAtLeast, vsockCid } from './firecracker-driver.js';

/**
 * Contract tests of the Firecracker driver against a fake that implements the
 * published API spec (test/fakes/fake-firecracker.ts), run as the
 * `firecracker` binary. Real Firecracker needs real KVM, which these
 * machines do not have; wherever it exists, the same driver runs it.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-fc-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const fakeMain = fileURLToPath(new URL('../../../test/fakes/fake-firecracker-main.js', import.meta.url));
const fakeBinary = join(root, 'firecracker');
writeFileSync(fakeBinary, `#!/bin/sh\nexec ${process.execPath} ${fakeMain} "$@"\n`);
chmodSync(fakeBinary, 0o755);

const usableKvm = (): { kind: 'usable'; module: string } => ({ kind: 'usable', module: 'kvm_intel' });

let counter = 0;
function spec(overrides: Partial<LaunchSpec> = {}): LaunchSpec {
  const dir = join(root, `vm-${++counter}`);
  mkdirSync(join(dir, 'run'), { recursive: true });
  const file = (name: string): string => {
    const path = join(dir, name);
    writeFileSync(path, name);
    return path;
  };
  return {
    vmId: `0123abcd${String(counter).padStart(8, '0')}`,
    vcpu: 2,
    memoryMiB: 512,
    kernel: { vmlinux: file('vmlinux'), initramfs: file('initramfs.cpio') },
    disks: { image: file('rootfs.ext4'), upper: file('upper.ext4'), work: file('work.ext4') },
    net: { tap: 'bangert1', mac: '52:54:ba:00:00:01', guestIp: '172.30.0.2', prefix: 24, gatewayIp: '172.30.0.1' },
    init: 'minimal',
    vmDir: dir,
    runDir: join(dir, 'run'),
    ...overrides,
  };
}

describe('Firecracker driver against the spec-faithful fake', () => {
  test('full boot sequence: every resource configured, then InstanceStart, private sockets', async () => {
    const driver = new FirecrackerDriver({ binary: fakeBinary, kvm: usableKvm });
    const s = spec();
    const handle = await driver.start(s);
    try {
      assert.equal(handle.driver, 'firecracker');
      assert.equal(handle.controlSocket, join(s.runDir, API_SOCKET));
      assert.deepEqual(handle.console, { kind: 'fifo', path: join(s.runDir, 'console.fifo'), startedPaused: false });
      assert.ok(lstatSync(join(s.runDir, 'console.fifo')).isFIFO(), 'the console is a named pipe, never a growing file');
      assert.equal(lstatSync(handle.controlSocket).mode & 0o077, 0, 'umask 077: no group or other access to the API socket from birth');
      assert.ok(driver.isAlive(handle));

      const api = new FirecrackerApi(handle.controlSocket);
      assert.equal((await api.describeInstance()).state, 'Running');
      const config = (await (async () => {
        const { request } = await import('node:http');
        return new Promise<Record<string, unknown>>((resolve, reject) => {
          request({ socketPath: handle.controlSocket, path: '/vm/config' }, (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => {
              resolve(JSON.parse(text) as Record<string, unknown>);
            });
          })
            .on('error', reject)
            .end();
        });
      })()) as {
        'machine-config': { vcpu_count: number; mem_size_mib: number; smt: boolean };
        'boot-source': { kernel_image_path: string; initrd_path: string; boot_args: string };
        drives: { drive_id: string; path_on_host: string; is_read_only: boolean; is_root_device: boolean }[];
        'network-interfaces': { iface_id: string; host_dev_name: string; guest_mac: string }[];
        vsock: { guest_cid: number; uds_path: string };
        logger: { log_path: string };
        metrics: { metrics_path: string };
      };
      assert.deepEqual(config['machine-config'], { vcpu_count: 2, mem_size_mib: 512, smt: false, track_dirty_pages: false });
      assert.equal(config['boot-source'].kernel_image_path, s.kernel.vmlinux);
      assert.equal(config['boot-source'].initrd_path, s.kernel.initramfs);
      assert.match(
        config['boot-source'].boot_args,
        /banger\.root=\/dev\/vda banger\.upper=\/dev\/vdb banger\.work=\/dev\/vdc banger\.ip=172\.30\.0\.2\/24 banger\.gw=172\.30\.0\.1 banger\.init=minimal/,
      );
      assert.deepEqual(
        config.drives.map((d) => [d.drive_id, d.path_on_host, d.is_read_only, d.is_root_device]),
        [
          ['image', s.disks.image, true, false],
          ['upper', s.disks.upper, false, false],
          ['work', s.disks.work, false, false],
        ],
        'attached in vda, vdb, vdc order; the image read-only',
      );
      assert.deepEqual(config['network-interfaces'], [{ iface_id: 'eth0', host_dev_name: 'bangert1', guest_mac: '52:54:ba:00:00:01' }]);
      assert.equal(config.vsock.guest_cid, vsockCid(s.vmId));
      assert.ok(config.vsock.guest_cid >= 3);
      assert.equal(config.logger.log_path, join(s.vmDir, 'firecracker.log'));
      assert.equal(config.metrics.metrics_path, join(s.vmDir, 'metrics.json'));

      // Pre-boot-only resources are refused once the VM runs, with Firecracker's message.
      await assert.rejects(api.putMachineConfig({ vcpu_count: 1, mem_size_mib: 256 }), (e: unknown) => {
        assert.ok(e instanceof BangerError);
        assert.equal(e.code, 'ERR_VMM_FAILED');
        assert.equal(e.message, 'firecracker PUT /machine-config failed (400): The requested operation is not supported after starting the microVM.');
        return true;
      });

      // Graceful shutdown: Ctrl-Alt-Del; the guest reboots and Firecracker (reboot=k) exits.
      await driver.requestShutdown(handle);
      for (let i = 0; i < 100 && driver.isAlive(handle); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(driver.isAlive(handle), false);
    } finally {
      await driver.kill(handle);
    }
  });

  test('an API error fails the start, surfaces fault_message, and leaves no process', async () => {
    const driver = new FirecrackerDriver({ binary: fakeBinary, kvm: usableKvm });
    const missing = spec({ kernel: { vmlinux: join(root, 'no-such-vmlinux'), initramfs: join(root, 'no-such-initrd') } });
    await assert.rejects(driver.start(missing), (e: unknown) => {
      assert.ok(e instanceof BangerError);
      assert.equal(e.code, 'ERR_VMM_FAILED');
      assert.match(
        e.message,
        /^firecracker PUT \/boot-source failed \(400\): Boot source error: The kernel file cannot be opened: No such file or directory \(os error 2\)$/,
      );
      return true;
    });
    const socket = join(missing.runDir, API_SOCKET);
    assert.throws(() => lstatSync(socket), /ENOENT/, 'the socket is gone');
    const survivors = readdirSync('/proc').filter((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(socket);
      } catch {
        return false;
      }
    });
    assert.deepEqual(survivors, [], 'no firecracker process is left');
  });

  test('pre-boot and request rules of the API itself', async () => {
    const socket = join(root, 'direct.sock');
    const { fakeFirecracker } = await import('../../../test/fakes/fake-firecracker.js');
    const fake = fakeFirecracker(socket, 'direct');
    const api = new FirecrackerApi(socket);
    try {
      await assert.rejects(api.action('SendCtrlAltDel'), /400\): The requested operation is not supported before starting the microVM\.$/);
      await assert.rejects(api.action('InstanceStart'), /400\): Start microvm error: Cannot start the VM because the kernel was not configured\.$/);
      await assert.rejects(api.putMachineConfig({ vcpu_count: 33, mem_size_mib: 128 }), /The vCPU number is invalid/);
      await assert.rejects(api.putMachineConfig({ vcpu_count: 3, mem_size_mib: 128, smt: true }), /only be 1 or an even number when SMT is enabled/);
      await assert.rejects(
        api.putNetworkInterface({ iface_id: 'eth0', host_dev_name: 'tap0', bogus: 1 } as never),
        /unknown field `bogus`, expected one of `iface_id`, `host_dev_name`/,
      );
      await assert.rejects(api.putVsock({ guest_cid: 2, uds_path: '/x' }), /Invalid guest CID/);
      assert.deepEqual(
        await api.getMachineConfig(),
        { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false },
        'failed updates change nothing',
      );
    } finally {
      fake.close();
    }
  });

  test('refuses to start without usable KVM, starting nothing', async () => {
    const driver = new FirecrackerDriver({ binary: fakeBinary, kvm: () => ({ kind: 'pvm' }) });
    const s = spec();
    await assert.rejects(
      driver.start(s),
      (e: unknown) => e instanceof BangerError && e.code === 'ERR_KVM_UNAVAILABLE' && e.message.includes("this host's /dev/kvm is pvm"),
    );
    assert.throws(() => lstatSync(join(s.runDir, API_SOCKET)), /ENOENT/);
  });

  test('a Firecracker older than 1.16 is refused before anything is configured, and left not running', async () => {
    assert.deepEqual(MIN_FIRECRACKER_VERSION, [1, 16]);
    assert.ok(versionAtLeast('1.16.0', [1, 16]) && versionAtLeast('1.17.0-dev', [1, 16]) && versionAtLeast('2.0.0', [1, 16]));
    assert.ok(!versionAtLeast('1.15.1', [1, 16]) && !versionAtLeast('0.25.0', [1, 16]) && !versionAtLeast('unknown', [1, 16]));
    const driver = new FirecrackerDriver({ binary: fakeBinary, kvm: usableKvm });
    const s = spec();
    process.env.FAKE_FIRECRACKER_VERSION = '1.15.0';
    try {
      await assert.rejects(
        driver.start(s),
        (e: unknown) => e instanceof BangerError && e.code === 'ERR_VMM_FAILED' && e.message === 'firecracker 1.15.0 is too old: banger needs 1.16 or newer',
      );
    } finally {
      delete process.env.FAKE_FIRECRACKER_VERSION;
    }
    assert.throws(() => lstatSync(join(s.runDir, API_SOCKET)), /ENOENT/, 'the process was killed and its socket removed');
  });

  test('kill is idempotent', async () => {
    const driver = new FirecrackerDriver({ binary: fakeBinary, kvm: usableKvm });
    const handle = await driver.start(spec());
    await driver.kill(handle);
    assert.equal(driver.isAlive(handle), false);
    await driver.kill(handle);
  });
});
