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
  deps: { driver: VmmDriver; guests: Pick<GuestAccess, 'connection'> },
  vm: { id: string; init: 'minimal' | 'systemd'; guestIp: string },
  vmm: VmmHandle,
  ctx: OpContext,
): Promise<void> {
  const { driver } = deps;
  ctx.progress('shutdown', 'asking the guest to power off');
  const asked = await powerOffOverSsh(deps.guests, vm, ctx);
  failpoint(FAILPOINTS.stopShutdown);
  const stopped = asked && (await waitDead(driver, vmm, GRACEFUL_STOP_MS));
  if (stopped) return;
  if (driver.features.requestShutdown) {
    ctx.progress('shutdown', 'pressing the ACPI power button');
    await driver.requestShutdown(vmm).catch((error: unknown) => {
      ctx.log.warn({ vm: vm.id, err_message: errorMessage(error) }, 'ACPI power button failed');
    });
    if (await waitDead(driver, vmm, ACPI_STOP_MS)) return;
    ctx.progress('shutdown', 'the guest did not stop: killing it');
  }
  await driver.kill(vmm);
}

async function powerOffOverSsh(
  guests: Pick<GuestAccess, 'connection'>,
  vm: { id: string; init: 'minimal' | 'systemd'; guestIp: string },
  ctx: OpContext,
): Promise<boolean> {
  try {
    const guest = await guests.connection(vm.id, vm.guestIp, 5000);
    const command = vm.init === 'systemd' ? 'systemctl poweroff' : '/banger/busybox poweroff';
    // The connection may drop as the guest goes down; that is the point, so a failure here is only noted.
    await Promise.race([
      guest.run(`nohup ${command} >/dev/null 2>&1 &`).catch((error: unknown) => {
        ctx.log.debug({ vm: vm.id, err_message: errorMessage(error) }, 'poweroff command ended with the connection');
      }),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    return true;
  } catch (error) {
    ctx.log.warn({ vm: vm.id, err_message: errorMessage(error) }, 'could not ask the guest to power off over SSH; trying the power button');
    return false;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function waitDead(driver: VmmDriver, vmm: VmmHandle, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (driver.isAlive(vmm)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
}
