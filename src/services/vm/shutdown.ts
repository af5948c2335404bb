import type { VmmDriver, VmmHandle } from '../../vmm/driver.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import type { OpContext } from '../op-context.js';
import type { GuestAccess } from './guest-access.js';

const GRACEFUL_STOP_MS = 30_000;
const ACPI_STOP_MS = 10_000;

/**
 * Ends a running VM as gently as it will go: ask the guest to power off over
 * its open connection, then the ACPI power button, then kill, each with a
 * deadline. Returns when the VMM process is gone.
 */
export async function shutdownVm(
  deps: { driver: VmmDriver; guests: GuestAccess },
  vm: { id: string; init: 'minimal' | 'systemd'; guestIp: string },
  vmm: VmmHandle,
  ctx: OpContext,
): Promise<void> {
  const { driver } = deps;
  ctx.progress('shutdown', 'asking the guest to power off');
  const asked = await powerOffOverSsh(deps.guests, vm);
  failpoint(FAILPOINTS.stopShutdown);
  const stopped = asked && (await waitDead(driver, vmm, GRACEFUL_STOP_MS));
  if (stopped) return;
  if (driver.features.requestShutdown) {
    ctx.progress('shutdown', 'pressing the ACPI power button');
    await driver.requestShutdown(vmm).catch(() => undefined);
    if (await waitDead(driver, vmm, ACPI_STOP_MS)) return;
    ctx.progress('shutdown', 'the guest did not stop: killing it');
  }
  await driver.kill(vmm);
}

async function powerOffOverSsh(guests: GuestAccess, vm: { id: string; init: 'minimal' | 'systemd'; guestIp: string }): Promise<boolean> {
  try {
    const guest = await guests.connection(vm.id, vm.guestIp, 5000);
    const command = vm.init === 'systemd' ? 'systemctl poweroff' : '/banger/busybox poweroff';
    // The connection may drop as the guest goes down; that is the point.
    await Promise.race([guest.run(`nohup ${command} >/dev/null 2>&1 &`).catch(() => undefined), new Promise((r) => setTimeout(r, 3000))]);
    return true;
  } catch {
    return false;
  }
}

async function waitDead(driver: VmmDriver, vmm: VmmHandle, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (driver.isAlive(vmm)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}
