/**
 * Named fault-injection points for the fault suite (test/faults): a
 * failpoint listed in BANGER_FAILPOINTS makes the daemon SIGKILL itself the
 * moment it reaches that point, so a test can crash it at an exact stage of
 * an operation (the technique of etcd's gofail and TiKV's fail-rs) instead of
 * racing a `kill -9` against progress output. Unset, every failpoint is a
 * no-op. Only the user's own daemon reads the variable, so it grants nothing.
 *
 * BANGER_FAILPOINTS is a comma-separated list of names from FAILPOINTS.
 */

export const FAILPOINTS = {
  /** vm create: the VM's row is reserved and its disks are half built (upper done, work not yet). */
  createDisks: 'create.disks',
  /** vm start/create: the tap is attached, no VMM yet. */
  startNetwork: 'start.network',
  /** vm start/create: the VMM runs and its handles are saved; SSH not yet awaited. */
  startBoot: 'start.boot',
  /** vm start/create: waiting for the guest's SSH (the guest is booting). */
  startSsh: 'start.ssh',
  /** vm stop: the guest was asked to power off; its VMM may still run. */
  stopShutdown: 'stop.shutdown',
  /** vm delete: the VM's runtime is cleaned up; its directory and row are not yet removed. */
  deleteCleanup: 'delete.cleanup',
  /** image pull: the image is being built in its staging directory. */
  imagePull: 'image.pull',
} as const;

export type FailpointName = (typeof FAILPOINTS)[keyof typeof FAILPOINTS];

const ENV_VAR = 'BANGER_FAILPOINTS';

let armed: ReadonlySet<string> = parse(process.env[ENV_VAR]);

function parse(value: string | undefined): ReadonlySet<string> {
  return new Set(
    (value ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );
}

/** Re-reads the armed set (tests of this module). */
export function armFailpoints(value: string | undefined): void {
  armed = parse(value);
}

/** Crashes the process here when `name` is armed; otherwise does nothing. */
export function failpoint(name: FailpointName): void {
  if (!armed.has(name)) return;
  process.stderr.write(`failpoint ${name}: killing ${String(process.pid)}\n`);
  process.kill(process.pid, 'SIGKILL');
}
