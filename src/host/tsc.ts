import { readFileSync } from 'node:fs';

/**
 * The host's TSC frequency in kHz. QEMU's microvm machine under TCG gives
 * the guest no way to calibrate its TSC ("could not calculate TSC khz" and a
 * stall), so banger passes `tsc_early_khz=` on the kernel command line.
 * Read from sysfs where the kernel exposes it, else from /proc/cpuinfo's
 * "cpu MHz" (close enough: the guest only needs a working clock source).
 */
export function hostTscKhz(
  files: { sysfs: string; cpuinfo: string } = { sysfs: '/sys/devices/system/cpu/cpu0/tsc_freq_khz', cpuinfo: '/proc/cpuinfo' },
): number | undefined {
  try {
    const khz = Number(readFileSync(files.sysfs, 'utf8').trim());
    if (Number.isInteger(khz) && khz > 0) return khz;
  } catch {
    // not exposed on this kernel
  }
  try {
    const match = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync(files.cpuinfo, 'utf8'));
    if (match?.[1] !== undefined) return Math.round(Number(match[1]) * 1000);
  } catch {
    // no /proc
  }
  return undefined;
}
