import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

import { pino } from 'pino';

import { VM_CONSOLE_LOG, VM_CONSOLE_LOG_ROTATED, VM_CONSOLE_SOCKET } from '../../config/filenames.js';
import { findExecutable } from '../../host/executables.js';
import type { LaunchSpec, VmmHandle } from '../../vmm/driver.js';
import { FirecrackerDriver } from '../../vmm/firecracker/firecracker-driver.js';
import { QemuDriver, QMP_SOCKET } from '../../vmm/qemu/qemu-driver.js';
import { qmpCommand } from '../../vmm/qemu/qmp.js';
import { writeTinyGuest } from '../../../test/fakes/tiny-guest.js';
import { CONSOLE_LOG_CAP_BYTES, ConsoleRecorder, readConsoleTail } from './console-log.js';
import { readTailLines, RotatingLog } from './rotating-log.js';

const root = mkdtempSync(join(tmpdir(), 'banger-console-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
const silent = pino({ level: 'silent' });

let counter = 0;
function freshDir(): string {
  const dir = join(root, `t${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Resolves once `check` holds, looking again whenever the event loop has turned (no time bound: the test's timeout is the bound). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
}

function sizeOf(path: string): number {
  return existsSync(path) ? statSync(path).size : -1;
}

/**
 * Stands in for QEMU's `-chardev socket,server=on,wait=off`: listens on a
 * unix socket, serves one reader at a time, and drops what the guest writes
 * while no reader is connected.
 */
class FakeConsoleSocket {
  readonly server: Server;
  client: Socket | undefined;
  connections = 0;

  constructor(readonly path: string) {
    this.server = createServer((socket) => {
      this.connections++;
      this.client = socket;
      socket.on('close', () => {
        if (this.client === socket) this.client = undefined;
      });
      socket.on('error', () => undefined);
    });
  }

  async listen(): Promise<void> {
    this.server.listen(this.path);
    await once(this.server, 'listening');
  }

  /** The guest writes: to the reader if one is connected, else into the void. */
  guestWrites(text: string | Buffer): void {
    this.client?.write(text);
  }

  async close(): Promise<void> {
    this.client?.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}

function socketHandle(path: string, pid = 4242): VmmHandle {
  return { driver: 'qemu', pid, controlSocket: join(path, '..', 'qmp.sock'), accel: 'tcg', console: { kind: 'socket', path, startedPaused: false } };
}

describe('RotatingLog', () => {
  test('each generation stays within the cap, and the two read back as the stream’s last bytes in order', () => {
    const dir = freshDir();
    const path = join(dir, VM_CONSOLE_LOG);
    const log = new RotatingLog(path, 100);
    const stream = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
    // Uneven pieces, some larger than the cap.
    for (let at = 0; at < stream.length; ) {
      const piece = [7, 130, 1, 64, 250][at % 5] ?? 1;
      log.write(stream.subarray(at, at + piece));
      at += piece;
      assert.ok(sizeOf(path) <= 100 && sizeOf(join(dir, VM_CONSOLE_LOG_ROTATED)) <= 100, `sizes within the cap after ${at} bytes`);
    }
    log.close();
    assert.equal(sizeOf(path), 100, 'rotated at exactly the cap: 1000 bytes leave a full current file');
    const kept = Buffer.concat([readFileSync(join(dir, VM_CONSOLE_LOG_ROTATED)), readFileSync(path)]);
    assert.deepEqual(kept, stream.subarray(800));
  });

  test('an oversize log left by an older banger keeps only its last cap bytes once it rotates', () => {
    const dir = freshDir();
    const path = join(dir, VM_CONSOLE_LOG);
    const old = Buffer.from('x'.repeat(4000) + 'the last ninety-nine bytes of the old log'.padEnd(99, '.') + '!');
    writeFileSync(path, old);
    const log = new RotatingLog(path, 100);
    log.write(Buffer.from('new\n'));
    log.close();
    assert.deepEqual(readFileSync(join(dir, VM_CONSOLE_LOG_ROTATED)), old.subarray(old.length - 100));
    assert.equal(readFileSync(path, 'utf8'), 'new\n');
  });
});

describe('readConsoleTail', () => {
  test('reads across the rotated file: a line cut by rotation is whole again; blank lines and \\r go', () => {
    const dir = freshDir();
    const path = join(dir, VM_CONSOLE_LOG);
    writeFileSync(join(dir, VM_CONSOLE_LOG_ROTATED), 'one\r\ntwo\r\n\r\nthree is cut');
    writeFileSync(path, ' by rotation\r\nfour\r\nfive (no newline yet)');
    assert.deepEqual(readConsoleTail(path, 3), ['three is cut by rotation', 'four', 'five (no newline yet)']);
    assert.deepEqual(readConsoleTail(path, 100), ['one', 'two', 'three is cut by rotation', 'four', 'five (no newline yet)']);
    assert.deepEqual(readConsoleTail(path, 0), []);
  });

  test('a rotation between opening the two files does not repeat lines (the rotated file is the one already read)', () => {
    const dir = freshDir();
    const path = join(dir, VM_CONSOLE_LOG);
    writeFileSync(path, 'a\nb\n');
    // What the reader sees when the log rotates after it opened console.log: console.log.1 is that same file.
    linkSync(path, join(dir, VM_CONSOLE_LOG_ROTATED));
    assert.deepEqual(readConsoleTail(path, 10), ['a', 'b']);
  });

  test('no log yet, or only the rotated one', () => {
    const dir = freshDir();
    const path = join(dir, VM_CONSOLE_LOG);
    assert.deepEqual(readConsoleTail(path, 10), []);
    writeFileSync(join(dir, VM_CONSOLE_LOG_ROTATED), 'before the restart\n');
    assert.deepEqual(readConsoleTail(path, 10), ['before the restart']);
  });

  test('a huge log is read from the end only, never more than the byte budget', () => {
    const dir = freshDir();
    const path = join(dir, VM_CONSOLE_LOG);
    // 64 GiB, sparse: reading it whole would exhaust memory (readFileSync refuses files over 2 GiB outright).
    const huge = 64 * 1024 ** 3;
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i}`);
    const tail = Buffer.from(lines.join('\n') + '\n');
    const fd = openSync(path, 'w');
    writeSync(fd, tail, 0, tail.length, huge - tail.length);
    closeSync(fd);
    assert.equal(statSync(path).size, huge);

    const few = readTailLines(path, 3, 4096);
    assert.deepEqual(few.lines, ['line 497', 'line 498', 'line 499']);
    assert.ok(few.bytesRead <= 4096, `read ${few.bytesRead} bytes`);

    // More lines asked for than the budget holds: exactly the budget is read, and the line it cut into is left out.
    const many = readTailLines(path, 10_000, 100);
    assert.equal(many.bytesRead, 100);
    const window = tail.subarray(tail.length - 100).toString();
    assert.deepEqual(
      many.lines,
      window
        .slice(window.indexOf('\n') + 1)
        .trimEnd()
        .split('\n'),
    );
    assert.ok(many.lines.length > 5 && !lines.slice(0, -many.lines.length).some((l) => many.lines.includes(l)));

    assert.deepEqual(readConsoleTail(path, 2), ['line 498', 'line 499'], 'vm logs on the huge file');
  });
});

describe('ConsoleRecorder', () => {
  test('records what arrives on the socket, rotating at the cap; the tail reads back across both files in order', async () => {
    const dir = freshDir();
    const fake = new FakeConsoleSocket(join(dir, VM_CONSOLE_SOCKET));
    await fake.listen();
    const logPath = join(dir, VM_CONSOLE_LOG);
    const recorder = new ConsoleRecorder({ log: silent, capBytes: 1000 });
    try {
      recorder.attach('vm1', socketHandle(fake.path), logPath);
      await until(() => fake.client !== undefined);
      // 3500 bytes, 35 lines of 100 bytes, in writes that do not line up with the cap.
      const stream = Array.from({ length: 35 }, (_, i) => `line ${String(i).padStart(2, '0')} `.padEnd(99, '=') + '\n').join('');
      for (let at = 0; at < stream.length; at += 333) fake.guestWrites(stream.slice(at, at + 333));
      await until(() => sizeOf(logPath) === 500);
      assert.equal(sizeOf(join(dir, VM_CONSOLE_LOG_ROTATED)), 1000);
      assert.equal(readFileSync(join(dir, VM_CONSOLE_LOG_ROTATED), 'utf8') + readFileSync(logPath, 'utf8'), stream.slice(2000));
      const tail = readConsoleTail(logPath, 12);
      assert.deepEqual(
        tail.map((l) => l.slice(0, 7)),
        Array.from({ length: 12 }, (_, i) => `line ${20 + i + 3}`),
      );
    } finally {
      recorder.closeAll();
      await fake.close();
    }
  });

  test('attach is idempotent; after closeAll (daemon restart) a new recorder attaches again and appends; output meanwhile is dropped', async () => {
    const dir = freshDir();
    const fake = new FakeConsoleSocket(join(dir, VM_CONSOLE_SOCKET));
    await fake.listen();
    const logPath = join(dir, VM_CONSOLE_LOG);
    const handle = socketHandle(fake.path);
    const first = new ConsoleRecorder({ log: silent });
    try {
      first.attach('vm1', handle, logPath);
      first.attach('vm1', handle, logPath);
      await until(() => fake.client !== undefined);
      fake.guestWrites('before the restart\n');
      await until(() => readConsoleTail(logPath, 5).length === 1);
      first.attach('vm1', { ...handle }, logPath);
      assert.equal(fake.connections, 1, 'attaching the same VMM again opens no second connection');

      first.closeAll();
      await until(() => fake.client === undefined);
      fake.guestWrites('while no daemon runs\n');

      const second = new ConsoleRecorder({ log: silent });
      try {
        second.attach('vm1', handle, logPath);
        await until(() => fake.client !== undefined);
        fake.guestWrites('after the restart\n');
        await until(() => readConsoleTail(logPath, 5).length === 2);
        assert.deepEqual(readConsoleTail(logPath, 5), ['before the restart', 'after the restart']);
        assert.equal(fake.connections, 2);

        // A different VMM for the same VM (it was restarted) replaces the recording.
        second.attach('vm1', socketHandle(fake.path, 4343), logPath);
        await until(() => fake.connections === 3 && fake.client !== undefined);
        second.detach('vm1');
        await until(() => fake.client === undefined);
        second.detach('vm1');
      } finally {
        second.closeAll();
      }
    } finally {
      first.closeAll();
      await fake.close();
    }
  });

  test('the recording ends when the VMM closes the console; a later attach starts a new one', async () => {
    const dir = freshDir();
    const fake = new FakeConsoleSocket(join(dir, VM_CONSOLE_SOCKET));
    await fake.listen();
    const logPath = join(dir, VM_CONSOLE_LOG);
    const recorder = new ConsoleRecorder({ log: silent });
    try {
      recorder.attach('vm1', socketHandle(fake.path), logPath);
      await until(() => fake.client !== undefined);
      fake.guestWrites('first boot\n');
      await until(() => readConsoleTail(logPath, 5).length === 1);
      fake.client?.destroy();
      await until(() => fake.client === undefined);
      recorder.attach('vm1', socketHandle(fake.path), logPath);
      await until(() => fake.connections === 2 && fake.client !== undefined);
      fake.guestWrites('second boot\n');
      await until(() => readConsoleTail(logPath, 5).length === 2);
    } finally {
      recorder.closeAll();
      await fake.close();
    }
  });

  test('a handle without a console (an older banger’s VM) and a missing console are left alone', () => {
    const dir = freshDir();
    const logPath = join(dir, VM_CONSOLE_LOG);
    writeFileSync(logPath, 'written by QEMU itself\n');
    const recorder = new ConsoleRecorder({ log: silent });
    recorder.attach('old', { driver: 'qemu', pid: 1, controlSocket: join(dir, 'qmp.sock'), accel: 'tcg' }, logPath);
    recorder.attach(
      'gone',
      { driver: 'firecracker', pid: 1, controlSocket: 'x', accel: 'kvm', console: { kind: 'fifo', path: join(dir, 'none'), startedPaused: false } },
      logPath,
    );
    recorder.closeAll();
    assert.equal(readFileSync(logPath, 'utf8'), 'written by QEMU itself\n', 'the old VM’s log is not rotated behind its QEMU’s back');
  });
});

// QEMU is a required host package (scripts/host-packages.txt): without it this suite fails rather than skips.
const qemu = findExecutable('qemu-system-x86_64') ?? 'qemu-system-x86_64';

describe('real QEMU: the console socket carries the boot from its first byte', { timeout: 60_000 }, () => {
  test('the guest stays stopped until the recorder has the console, which then holds everything it printed', async () => {
    const dir = join(freshDir(), 'with,comma');
    const spec: LaunchSpec = {
      vmId: 'c0ffee',
      vcpu: 1,
      memoryMiB: 64,
      kernel: { vmlinux: join(dir, 'tiny.elf'), initramfs: join(dir, 'empty.cpio') },
      disks: { image: join(dir, 'image.ext4'), upper: join(dir, 'upper.ext4'), work: join(dir, 'work.ext4') },
      net: { tap: 'unused', mac: '52:54:00:00:00:09', guestIp: '10.0.0.9', prefix: 24, gatewayIp: '10.0.0.1' },
      init: 'minimal',
      vmDir: join(dir, 'vm'),
      runDir: join(dir, 'run'),
    };
    for (const sub of [spec.vmDir, spec.runDir]) mkdirSync(sub, { recursive: true });
    const banner = 'tiny-guest: the first bytes of the boot\r\nand a second line\r\n';
    writeTinyGuest(spec.kernel.vmlinux, banner);
    writeFileSync(spec.kernel.initramfs, '');
    for (const disk of Object.values(spec.disks)) writeFileSync(disk, Buffer.alloc(64 * 1024));

    // The argv the driver's start() runs, minus the tap (creating one needs root and is not what this is about).
    const full = new QemuDriver({ binary: qemu, accel: 'tcg' }).args(spec, { sandbox: false, paused: true });
    const args: string[] = [];
    for (let i = 0; i < full.length; i++) {
      const flag = full[i] ?? '';
      if (flag === '-netdev' || (flag === '-device' && (full[i + 1] ?? '').startsWith('virtio-net'))) i++;
      else args.push(flag);
    }
    const child = spawn(qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    const qmp = join(spec.runDir, QMP_SOCKET);
    const consoleSocket = join(spec.runDir, VM_CONSOLE_SOCKET);
    const recorder = new ConsoleRecorder({ log: silent });
    try {
      await until(() => {
        assert.equal(child.exitCode, null, `qemu exited: ${stderr}`);
        return existsSync(qmp) && existsSync(consoleSocket);
      });
      assert.deepEqual(await qmpCommand(qmp, 'query-status'), { status: 'prelaunch', singlestep: false, running: false }, 'started stopped (-S)');

      const logPath = join(spec.vmDir, VM_CONSOLE_LOG);
      const handle: VmmHandle = {
        driver: 'qemu',
        pid: child.pid ?? -1,
        controlSocket: qmp,
        accel: 'tcg',
        console: { kind: 'socket', path: consoleSocket, startedPaused: true },
      };
      recorder.attach('c0ffee', handle, logPath);
      await until(() => sizeOf(logPath) >= Buffer.byteLength(banner));
      assert.equal(readFileSync(logPath, 'utf8'), banner, 'not one byte of the boot lost, nothing else written');
      assert.equal(((await qmpCommand(qmp, 'query-status')) as { running: boolean }).running, true, 'resumed by the recorder');
      assert.deepEqual(readConsoleTail(logPath, 1), ['and a second line']);
    } finally {
      recorder.closeAll();
      child.kill('SIGKILL');
      await exited;
    }
  });
});

describe('Firecracker (the fake): the console pipe', () => {
  test('what the guest printed before anyone read the pipe is recorded once the recorder attaches', async () => {
    const dir = freshDir();
    const fakeMain = fileURLToPath(new URL('../../../test/fakes/fake-firecracker-main.js', import.meta.url));
    const binary = join(dir, 'firecracker');
    writeFileSync(binary, `#!/bin/sh\nexec ${process.execPath} ${fakeMain} "$@"\n`);
    chmodSync(binary, 0o755);
    const file = (name: string): string => {
      writeFileSync(join(dir, name), name);
      return join(dir, name);
    };
    mkdirSync(join(dir, 'run'));
    const spec: LaunchSpec = {
      vmId: '0123abcd00000001',
      vcpu: 1,
      memoryMiB: 128,
      kernel: { vmlinux: file('vmlinux'), initramfs: file('initramfs.cpio') },
      disks: { image: file('rootfs.ext4'), upper: file('upper.ext4'), work: file('work.ext4') },
      net: { tap: 'bangert1', mac: '52:54:ba:00:00:01', guestIp: '172.30.0.2', prefix: 24, gatewayIp: '172.30.0.1' },
      init: 'minimal',
      vmDir: dir,
      runDir: join(dir, 'run'),
    };
    const driver = new FirecrackerDriver({ binary, kvm: () => ({ kind: 'usable', module: 'kvm_intel' }) });
    const handle = await driver.start(spec);
    const pipe = handle.console?.path ?? '';
    const recorder = new ConsoleRecorder({ log: silent });
    const logPath = join(dir, VM_CONSOLE_LOG);
    try {
      assert.equal(handle.console?.kind, 'fifo');
      recorder.attach(spec.vmId, handle, logPath);
      await until(() => readConsoleTail(logPath, 5).length === 1);
      assert.deepEqual(readConsoleTail(logPath, 5), [`fake-firecracker: ${spec.vmId} booted`]);
    } finally {
      recorder.closeAll();
      await driver.kill(handle);
    }
    assert.ok(pipe !== '' && !existsSync(pipe), 'kill removes the pipe');
    assert.ok(sizeOf(logPath) < CONSOLE_LOG_CAP_BYTES);
  });
});
