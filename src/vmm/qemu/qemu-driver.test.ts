import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { VM_CONSOLE_SOCKET } from '../../config/filenames.js';
import { findExecutable } from '../../host/executables.js';
import type { LaunchSpec } from '../driver.js';
import { QemuDriver, QMP_SOCKET, qemuProcessMarker } from './qemu-driver.js';
import { consoleConnected } from './qemu-console.js';
import { qemuOptionValue } from './qemu-options.js';
import { qmpCommand } from './qmp.js';
import { probeSandbox, SANDBOX_OPTIONS } from './sandbox-probe.js';

/** QEMU's reading of an option string: `,` separates, `,,` is a literal comma. Returns [key, value] pairs (value undefined for a bare word). */
function parseQemuOpts(text: string): [string, string | undefined][] {
  const items: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ',' && text[i + 1] === ',') {
      current += ',';
      i++;
    } else if (text[i] === ',') {
      items.push(current);
      current = '';
    } else current += text.charAt(i);
  }
  items.push(current);
  return items.map((item) => {
    const eq = item.indexOf('=');
    return eq < 0 ? [item, undefined] : [item.slice(0, eq), item.slice(eq + 1)];
  });
}

/** The value of option `flag` whose string holds `id=<id>` (or the first one when id is undefined), parsed. */
function optionOf(args: readonly string[], flag: string, id?: string): Map<string, string | undefined> {
  for (let i = 0; i < args.length - 1; i++) {
    if (args[i] !== flag) continue;
    const opts = new Map(parseQemuOpts(args[i + 1] ?? ''));
    if (id === undefined || opts.get('id') === id) return opts;
  }
  throw new Error(`no ${flag} ${id ?? ''} in ${args.join(' ')}`);
}

const root = mkdtempSync(join(tmpdir(), 'banger-qemu-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function specIn(dir: string, tap = 'tap-b0'): LaunchSpec {
  return {
    vmId: 'vm1',
    vcpu: 1,
    memoryMiB: 128,
    kernel: { vmlinux: join(dir, 'vm,linux'), initramfs: join(dir, 'init,rd.cpio') },
    disks: { image: join(dir, 'images', 'a,b.ext4'), upper: join(dir, 'vm', 'upper,1.ext4'), work: join(dir, 'vm', 'work.ext4') },
    net: { tap, mac: '52:54:00:00:00:02', guestIp: '10.0.0.2', prefix: 24, gatewayIp: '10.0.0.1' },
    init: 'minimal',
    vmDir: join(dir, 'vm'),
    runDir: join(dir, 'run,time', 'vm1'),
  };
}

describe('qemuOptionValue', () => {
  test('doubles every comma and leaves everything else alone', () => {
    assert.equal(qemuOptionValue('/var/lib/x.ext4'), '/var/lib/x.ext4');
    assert.equal(qemuOptionValue('/tmp/a,b.ext4'), '/tmp/a,,b.ext4');
    assert.equal(qemuOptionValue('a,,b,'), 'a,,,,b,,');
    assert.equal(qemuOptionValue(''), '');
    assert.equal(qemuOptionValue('/tmp/with space=and"quote'), '/tmp/with space=and"quote');
  });

  test('QEMU reads the escaped value back whole, so a value cannot inject options', () => {
    for (const value of ['/tmp/a,b.ext4', '/x.ext4,readonly=off', ',', ',,', 'a,,,b']) {
      assert.deepEqual(parseQemuOpts(`file=${qemuOptionValue(value)},format=raw`), [
        ['file', value],
        ['format', 'raw'],
      ]);
    }
  });
});

describe('QemuDriver.args', () => {
  const driver = new QemuDriver({ binary: '/usr/bin/qemu-system-x86_64', accel: 'tcg' });
  const spec = specIn('/tmp/a,b');

  test('paths with commas reach every option string intact', () => {
    const args = driver.args(spec, { sandbox: false });
    assert.equal(optionOf(args, '-drive', 'image').get('file'), spec.disks.image);
    assert.equal(optionOf(args, '-drive', 'image').get('readonly'), 'on');
    assert.equal(optionOf(args, '-drive', 'upper').get('file'), spec.disks.upper);
    assert.equal(optionOf(args, '-drive', 'work').get('file'), spec.disks.work);
    assert.equal(optionOf(args, '-chardev', 'console').get('path'), join(spec.runDir, VM_CONSOLE_SOCKET));
    assert.deepEqual([...optionOf(args, '-qmp').keys()], [`unix:${join(spec.runDir, QMP_SOCKET)}`, 'server', 'wait']);
    assert.equal(optionOf(args, '-netdev').get('ifname'), spec.net.tap);
    assert.equal(optionOf(args, '-netdev').get('script'), 'no');
  });

  test('the serial console is a listening unix socket in the runtime dir, and the guest starts stopped until its reader resumes it', () => {
    const args = driver.args(spec, { sandbox: false, paused: true });
    const console = optionOf(args, '-chardev', 'console');
    assert.deepEqual([...console.keys()], ['socket', 'id', 'path', 'server', 'wait']);
    assert.equal(console.get('server'), 'on');
    assert.equal(console.get('wait'), 'off', 'QEMU must not block at startup waiting for a reader');
    assert.equal(args[args.indexOf('-serial') + 1], 'chardev:console');
    assert.ok(args.includes('-S'), 'vCPUs stopped until the console is read');
    assert.ok(!driver.args(spec, { sandbox: false }).includes('-S'), 'only when asked (start() always asks)');
    assert.ok(!args.some((a) => a.startsWith('file,')), 'QEMU writes no console file of its own');
  });

  test('-kernel and -initrd take their paths whole', () => {
    const args = driver.args(spec, { sandbox: false });
    assert.equal(args[args.indexOf('-kernel') + 1], spec.kernel.vmlinux);
    assert.equal(args[args.indexOf('-initrd') + 1], spec.kernel.initramfs);
  });

  test('-sandbox is there exactly when asked for', () => {
    const confined = driver.args(spec, { sandbox: true });
    assert.equal(confined[confined.indexOf('-sandbox') + 1], SANDBOX_OPTIONS);
    assert.equal(SANDBOX_OPTIONS, 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
    assert.ok(!driver.args(spec, { sandbox: false }).includes('-sandbox'));
  });
});

describe('probeSandbox', { timeout: 30_000 }, () => {
  function fake(name: string, body: string): string {
    const path = join(root, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  test('a QEMU without seccomp reports why, in its own words', async () => {
    const binary = fake('qemu-no-seccomp', 'echo "qemu-system-x86_64: -sandbox on: seccomp support is disabled" >&2; exit 1');
    assert.deepEqual(await probeSandbox(binary), { supported: false, reason: 'qemu-system-x86_64: -sandbox on: seccomp support is disabled' });
  });

  test('something that exits 0 without speaking QMP is not taken for support', async () => {
    const result = await probeSandbox(fake('not-qemu', 'exit 0'));
    assert.equal(result.supported, false);
  });

  test('a missing binary and a hanging one are reported, not thrown', async () => {
    const missing = await probeSandbox(join(root, 'absent'));
    assert.ok(!missing.supported && missing.reason.startsWith('cannot run'));
    const hung = await probeSandbox(fake('qemu-hangs', 'exec sleep 30'), 300);
    assert.ok(!hung.supported && hung.reason.includes('did not answer'));
  });
});

// QEMU is a required host package (scripts/host-packages.txt): without it this suite fails rather than skips.
const qemu = findExecutable('qemu-system-x86_64') ?? 'qemu-system-x86_64';

/**
 * The real QEMU takes the driver's argv (sandboxed, comma paths everywhere)
 * up to a paused machine: drives opened, console and QMP sockets listening,
 * tap created when we may. The guest never runs (-S, as start() passes it,
 * and nobody resumes it; the kernel options are dropped), so this costs well under a
 * second. src/services/vm/console-log.test.ts runs a guest through the
 * console socket.
 */
describe('QEMU accepts the argv the driver builds', { timeout: 60_000 }, () => {
  test('sandbox probe: this QEMU supports the seccomp sandbox', async () => {
    assert.deepEqual(await probeSandbox(qemu), { supported: true });
  });

  test('a paused microvm with comma paths, confined, answering QMP; the driver sees it alive and kills it', async () => {
    const dir = join(root, 'live,dir');
    // QEMU creates a tap it may create (root); otherwise the network options are left out.
    const tapAllowed = process.getuid?.() === 0 && existsSync('/dev/net/tun');
    const spec = specIn(dir, `bqt${randomBytes(3).toString('hex')}`);
    mkdirSync(join(dir, 'images'), { recursive: true });
    mkdirSync(spec.vmDir, { recursive: true });
    mkdirSync(spec.runDir, { recursive: true });
    for (const disk of Object.values(spec.disks)) writeFileSync(disk, Buffer.alloc(1024 * 1024));

    const driver = new QemuDriver({ binary: qemu, accel: 'tcg' });
    const sandbox = await driver.sandboxSupport();
    assert.equal(sandbox.supported, true);
    const full = driver.args(spec, { sandbox: sandbox.supported, paused: true });
    const args: string[] = [];
    for (let i = 0; i < full.length; i++) {
      const flag = full[i] ?? '';
      if (['-kernel', '-initrd', '-append'].includes(flag)) i++;
      else if (!tapAllowed && flag === '-netdev') i += 3;
      else args.push(flag);
    }
    const child = spawn(qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    try {
      const qmp = join(spec.runDir, QMP_SOCKET);
      const deadline = Date.now() + 10_000;
      while (!existsSync(qmp)) {
        assert.ok(child.exitCode === null, `qemu exited: ${stderr}`);
        assert.ok(Date.now() < deadline, 'QMP socket appears');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const blocks = (await qmpCommand(qmp, 'query-block')) as { device: string; inserted?: { file: string; ro: boolean } }[];
      assert.deepEqual(
        blocks.map((b) => [b.device, b.inserted?.file, b.inserted?.ro]),
        [
          ['image', spec.disks.image, true],
          ['upper', spec.disks.upper, false],
          ['work', spec.disks.work, false],
        ],
      );
      assert.ok(existsSync(join(spec.runDir, VM_CONSOLE_SOCKET)), 'console socket listening at the comma path');
      assert.equal(await consoleConnected(qmp), false, 'nobody reads the console yet');
      assert.deepEqual(await qmpCommand(qmp, 'query-status'), { status: 'prelaunch', singlestep: false, running: false }, 'the guest waits (-S)');
      if (tapAllowed) assert.ok(existsSync(`/sys/class/net/${spec.net.tap}`), 'tap created');

      const consoleSocket = join(spec.runDir, VM_CONSOLE_SOCKET);
      const handle = {
        driver: 'qemu' as const,
        pid: child.pid ?? -1,
        controlSocket: qmp,
        accel: 'tcg',
        console: { kind: 'socket' as const, path: consoleSocket, startedPaused: true },
      };
      assert.ok(qemuProcessMarker(qmp).includes(',,'));
      assert.equal(driver.isAlive(handle), true, 'the pid check finds the escaped socket path in the command line');
      await driver.kill(handle);
      assert.equal(driver.isAlive(handle), false);
      assert.ok(!existsSync(consoleSocket) && !existsSync(qmp), 'kill removes both sockets');
      await exited;
    } finally {
      child.kill('SIGKILL');
    }
  });
});
