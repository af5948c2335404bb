import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import pino from 'pino';

import { fakeVmView } from '../../../test/helpers/fake-vm-parts.js';
import type { GuestExit, GuestProcess } from '../../guest/guest-connection.js';
import { BangerError } from '../../rpc/errors.js';
import type { VmInfo, VmStatsSample } from '../../rpc/methods.js';
import type { VmView } from '../vm/vm-service.js';
import { DaemonEventBus } from './event-bus.js';
import { runProbe, type ProbeGuest } from './guest-probe.js';
import { StatsService } from './stats-service.js';

// Stand-ins: VMs as views, a guest whose commands print canned output (or hang until killed), /proc files as a map.

/** A VmInfo carrying just what the stats service reads of a vm.changed event. */
function changedInfo(id: string, state: VmInfo['state']): VmInfo {
  return { id, name: `vm-${id}`, state } as VmInfo;
}

/** Output and status (written once `after` resolves, when given), a spawn failure, or a hang until killed. */
type GuestAnswer = { stdout: string; code?: number; after?: Promise<void> } | 'hang' | Error;

/** A guest whose every command answers `answer()`: output and a status, a spawn failure, or a hang until killed. */
class FakeGuest implements ProbeGuest {
  readonly scripts: string[] = [];
  kills = 0;

  constructor(public answer: () => GuestAnswer) {}

  spawn(script: string): Promise<GuestProcess> {
    this.scripts.push(script);
    const answer = this.answer();
    if (answer instanceof Error) return Promise.reject(answer);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let finish!: (exit: GuestExit) => void;
    const exited = new Promise<GuestExit>((resolve) => (finish = resolve));
    const end = (exit: GuestExit): void => {
      stdout.end();
      stderr.end();
      finish(exit);
    };
    if (answer !== 'hang') {
      void (answer.after ?? Promise.resolve()).then(() => {
        setImmediate(() => {
          stdout.write(answer.stdout);
          end({ code: answer.code ?? 0, signal: null });
        });
      });
    }
    const kill = (): void => {
      this.kills++;
      end({ code: null, signal: 'KILL' });
    };
    return Promise.resolve({
      pid: 99,
      stdin: new PassThrough(),
      stdout,
      stderr,
      signal: () => Promise.resolve(),
      resize: () => undefined,
      exited,
      close: kill,
      kill,
    });
  }
}

/** `/proc/<pid>/stat` text with the given utime + stime (all in utime) and start time, in ticks. */
function statText(pid: number, cpuTicks: number, startTicks: number): string {
  return `${pid} (qemu-system-x86) S 1 1 1 0 -1 4194560 100 0 0 0 ${cpuTicks} 0 0 0 20 0 3 0 ${startTicks} 3133440 412 18446744073709551615`;
}

function statusText(rssKiB: number): string {
  return `Name:\tqemu-system-x86\nVmRSS:\t ${rssKiB} kB\nThreads:\t4\n`;
}

const GUEST_OUTPUT = [
  'MemTotal: 500000',
  'MemAvailable: 400000',
  'loadavg 0.10 0.20 0.30 1/50 99',
  'uptime 60.5 50.0',
  '@df',
  'Filesystem 1024-blocks Used Available Capacity Mounted on',
  '/dev/vdc 1000 100 900 10% /root',
  '',
].join('\n');

/** A StatsService over fake VMs, guest and /proc; `samples` collects the vm.stats events it publishes. */
class Rig {
  readonly events = new DaemonEventBus();
  readonly proc = new Map<string, string>([['/proc/uptime', '100.00 90.00\n']]);
  readonly guest = new FakeGuest(() => ({ stdout: GUEST_OUTPUT }));
  readonly samples: { vm: string; sample: VmStatsSample }[] = [];
  views: VmView[] = [fakeVmView('a')];
  listCalls = 0;
  readonly service: StatsService;
  #waiters: (() => void)[] = [];

  constructor(options: { intervalMs?: number; historySize?: number } = {}) {
    this.setVmm(4242, 0, 0, 1000);
    this.service = new StatsService({
      vms: {
        list: () => {
          this.listCalls++;
          return Promise.resolve(this.views);
        },
        show: (ref) => {
          const view = this.views.find((v) => v.vm.id === ref || v.vm.name === ref);
          return view === undefined ? Promise.reject(new BangerError('ERR_NOT_FOUND', `no VM ${ref}`)) : Promise.resolve(view);
        },
        guest: () => Promise.resolve({ guest: this.guest }),
      },
      events: this.events,
      intervalMs: options.intervalMs ?? 1000,
      log: pino({ level: 'silent' }),
      historySize: options.historySize,
      readProc: (path) => {
        const text = this.proc.get(path);
        return text === undefined ? Promise.reject(new Error(`ENOENT: ${path}`)) : Promise.resolve(text);
      },
      ticksPerSecond: () => Promise.resolve(100),
    });
    this.events.subscribe(
      (event) => {
        if (event.kind !== 'vm.stats') return;
        this.samples.push({ vm: event.vm.name, sample: event.sample });
        for (const wake of this.#waiters.splice(0)) wake();
      },
      ['vm.stats'],
    );
  }

  setVmm(pid: number, cpuTicks: number, startTicks: number, rssKiB: number): void {
    this.proc.set(`/proc/${pid}/stat`, statText(pid, cpuTicks, startTicks));
    this.proc.set(`/proc/${pid}/status`, statusText(rssKiB));
  }

  /** Resolves once `count` samples in all have been published. */
  async samplesReach(count: number): Promise<void> {
    while (this.samples.length < count) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

// The service's timer and AbortSignal.timeout are unref'd (they must not keep the daemon alive): this keeps the test process running.
let keepAlive: NodeJS.Timeout;
before(() => {
  keepAlive = setInterval(() => undefined, 60_000);
});
after(() => {
  clearInterval(keepAlive);
});

describe('StatsService', () => {
  test('vm.stats samples a running VM not sampled yet: VMM CPU since it started, RSS, and the guest', async () => {
    const rig = new Rig();
    // Started at 50 s of host uptime (5000 ticks), now 100 s: 25 s of CPU in 50 s = 50%.
    rig.setVmm(4242, 2500, 5000, 2048);
    const [info] = await rig.service.stats('a');
    assert.equal(info?.vm, 'vm-a');
    assert.equal(info.state, 'running');
    assert.equal(info.intervalMs, 1000);
    assert.deepEqual(info.latest?.vmm, { cpuPercent: 50, rssBytes: 2048 * 1024 });
    assert.deepEqual(info.latest.guest, {
      memTotalBytes: 500000 * 1024,
      memAvailableBytes: 400000 * 1024,
      load1: 0.1,
      load5: 0.2,
      load15: 0.3,
      diskTotalBytes: 1000 * 1024,
      diskUsedBytes: 100 * 1024,
      uptimeSeconds: 60,
    });
    assert.equal(info.history.length, 1);
    assert.deepEqual(rig.samples, [{ vm: 'vm-a', sample: info.latest }], 'the sample is published as a vm.stats event');
    assert.equal(rig.service.latest('a'), info.latest);
    // Sampled already: a second call answers from the history.
    await rig.service.stats('a');
    assert.equal(rig.guest.scripts.length, 1);
  });

  test('the loop samples each interval; CPU is over the interval; the history keeps the last N', async () => {
    const rig = new Rig({ intervalMs: 1, historySize: 3 });
    rig.service.start();
    try {
      await rig.samplesReach(1);
      // The next reading: 100 more ticks (1 s of CPU) over 4 s of host time: 25%.
      rig.setVmm(4242, 100, 0, 1000);
      rig.proc.set('/proc/uptime', '104.00 90.00\n');
      await rig.samplesReach(2);
      assert.equal(rig.samples[1]?.sample.vmm.cpuPercent, 25);
      await rig.samplesReach(5);
      const [info] = await rig.service.stats(undefined);
      assert.equal(info?.history.length, 3, 'at most historySize samples');
      assert.deepEqual(info.history.at(-1), rig.service.latest('a'));
    } finally {
      await rig.service.close();
    }
  });

  test('a guest that fails, says nonsense or floods its output gives a sample with guest null; the VMM part stands', async () => {
    for (const answer of [new Error('channel refused'), { stdout: 'garbage' }, { stdout: 'x', code: 1 }, { stdout: 'y'.repeat(70 * 1024) }] as GuestAnswer[]) {
      const rig = new Rig();
      rig.guest.answer = () => answer;
      const [info] = await rig.service.stats('a');
      assert.equal(info?.latest?.guest, null, JSON.stringify(answer).slice(0, 40));
      assert.equal(info.latest.vmm.rssBytes, 1000 * 1024);
    }
  });

  test('a VMM that is gone gives no sample (and no event)', async () => {
    const rig = new Rig();
    rig.proc.delete('/proc/4242/stat');
    const [info] = await rig.service.stats('a');
    assert.equal(info?.latest, null);
    assert.deepEqual(rig.samples, []);
  });

  test('a VM that is not running has no stats, and is not sampled', async () => {
    const rig = new Rig();
    rig.views = [fakeVmView('a', { state: 'stopped', alive: false, pid: null })];
    assert.deepEqual(await rig.service.stats('a'), [{ vm: 'vm-a', id: 'a', state: 'stopped', latest: null, history: [], intervalMs: 1000 }]);
    assert.deepEqual(await rig.service.stats(undefined), [], 'the list covers running VMs only');
    assert.equal(rig.guest.scripts.length, 0);
  });

  test('a VM that stops or is deleted loses its history; a sample finishing after that is dropped', async () => {
    const rig = new Rig();
    rig.service.start();
    try {
      await rig.service.stats('a');
      rig.events.publish({ kind: 'vm.changed', vm: changedInfo('a', 'stopping') });
      assert.equal(rig.service.latest('a'), null);

      await rig.service.stats('a');
      rig.events.publish({ kind: 'vm.deleted', vm: { id: 'a', name: 'vm-a' } });
      assert.equal(rig.service.latest('a'), null);

      // The guest answers only after the VM was stopped: that sample belongs to no running VM.
      let release!: () => void;
      const after = new Promise<void>((resolve) => (release = resolve));
      rig.guest.answer = () => ({ stdout: GUEST_OUTPUT, after });
      const published = rig.samples.length;
      const scripts = rig.guest.scripts.length;
      const pending = rig.service.stats('a');
      while (rig.guest.scripts.length === scripts) await new Promise((resolve) => setImmediate(resolve));
      rig.events.publish({ kind: 'vm.changed', vm: changedInfo('a', 'stopped') });
      release();
      await pending;
      assert.equal(rig.service.latest('a'), null);
      assert.equal(rig.samples.length, published, 'no event for the dropped sample');
    } finally {
      await rig.service.close();
    }
  });

  test('the loop sleeps while nothing runs and wakes when a VM starts', async () => {
    const rig = new Rig({ intervalMs: 1 });
    rig.views = [];
    rig.service.start();
    try {
      while (rig.listCalls === 0 || rig.service.polling) await new Promise((resolve) => setTimeout(resolve, 5));
      const calls = rig.listCalls;
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.equal(rig.listCalls, calls, 'no polling with no running VM');
      assert.equal(rig.service.polling, false);

      rig.views = [fakeVmView('a')];
      rig.events.publish({ kind: 'vm.changed', vm: changedInfo('a', 'running') });
      assert.equal(rig.service.polling, true, 'a VM that runs wakes the loop');
      await rig.samplesReach(1);
    } finally {
      await rig.service.close();
    }
  });

  test('close stops the loop, kills a probe in progress, and leaves no listener on the bus', async () => {
    const rig = new Rig({ intervalMs: 1 });
    const before = rig.events.listenerCount;
    rig.guest.answer = () => 'hang';
    rig.service.start();
    assert.equal(rig.events.listenerCount, before + 1);
    while (rig.guest.scripts.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await rig.service.close();
    assert.equal(rig.guest.kills, 1, 'the hanging guest command was killed');
    assert.equal(rig.service.polling, false);
    assert.equal(rig.events.listenerCount, before);
    const calls = rig.listCalls;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(rig.listCalls, calls, 'nothing runs after close');
  });
});

describe('runProbe', () => {
  const signal = new AbortController().signal;

  test('returns the output of a script that succeeds', async () => {
    const guest = new FakeGuest(() => ({ stdout: 'hello' }));
    assert.equal(await runProbe(guest, 'echo hello', { maxBytes: 100, signal, what: 'a test' }), 'hello');
    assert.deepEqual(guest.scripts, ['echo hello']);
  });

  test('kills a script that prints more than maxBytes', async () => {
    const guest = new FakeGuest(() => ({ stdout: 'z'.repeat(101) }));
    await assert.rejects(runProbe(guest, 'yes', { maxBytes: 100, signal, what: 'a test' }), {
      code: 'ERR_GUEST_COMMAND_FAILED',
      message: /more than 100 bytes/,
    });
    assert.equal(guest.kills, 1);
  });

  test('a failing script is an error naming its status', async () => {
    const guest = new FakeGuest(() => ({ stdout: '', code: 3 }));
    await assert.rejects(runProbe(guest, 'false', { maxBytes: 100, signal, what: 'a test' }), { code: 'ERR_GUEST_COMMAND_FAILED', message: /status 3/ });
  });

  test('aborting kills the script and rejects with the reason; a timeout says the guest did not answer', async () => {
    const guest = new FakeGuest(() => 'hang');
    const controller = new AbortController();
    const pending = runProbe(guest, 'sleep 1000', { maxBytes: 100, signal: controller.signal, what: 'a test' });
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort(new BangerError('ERR_CANCELLED', 'request cancelled by the client'));
    await assert.rejects(pending, { code: 'ERR_CANCELLED' });
    assert.equal(guest.kills, 1);
    await assert.rejects(runProbe(guest, 'sleep 1000', { maxBytes: 100, signal: AbortSignal.timeout(1), what: 'a test' }), {
      code: 'ERR_GUEST_COMMAND_FAILED',
      message: /did not answer in time/,
    });
  });
});
