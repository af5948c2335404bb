import { spawn } from 'node:child_process';

/** What the initramfs prints when booted with `banger.probe`. */
export const PROBE_MARKER = 'banger-probe-ok';

/**
 * Boots the kernel and banger's initramfs with no disks under `accel` and
 * reports whether it reached userspace within `timeoutMs`. Some hosts expose
 * a /dev/kvm that cannot run an ordinary guest (it hangs in the kernel's
 * decompressor, printing nothing); this tells before a real VM waits on it.
 * The probe process is always killed.
 */
export function probeAccel(options: {
  binary: string;
  accelArgs: readonly string[];
  vmlinux: string;
  initramfs: string;
  extraCmdline?: readonly string[];
  timeoutMs: number;
}): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(
      options.binary,
      [
        ...['-M', 'microvm,acpi=on', ...options.accelArgs, '-m', '128', '-smp', '1'],
        ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio'],
        ...['-kernel', options.vmlinux, '-initrd', options.initramfs],
        ...['-append', ['console=ttyS0', 'panic=-1', 'quiet', 'cryptomgr.notests', ...(options.extraCmdline ?? []), 'banger.probe'].join(' ')],
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let output = '';
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => {
      finish(false);
    }, options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(PROBE_MARKER)) finish(true);
    });
    child.on('error', () => {
      finish(false);
    });
    child.on('close', () => {
      finish(output.includes(PROBE_MARKER));
    });
  });
}
