import { join } from 'node:path';

import { VM_CONSOLE_LOG, VM_VMM_LOG } from '../../config/filenames.js';
import { FIRECRACKER_LOG } from '../../vmm/firecracker/firecracker-driver.js';
import { BangerError } from '../../rpc/errors.js';
import { readConsoleTail } from './console-log.js';
import { readTailLines } from './rotating-log.js';

/** How much of a VMM log's end is read for its last lines: enough for a screenful, never the whole file. */
const VMM_TAIL_BYTES = 64 * 1024;

function tailLines(path: string, lines: number): string[] {
  return readTailLines(path, lines, VMM_TAIL_BYTES).lines;
}

/** The last lines of a VM's serial console (across its rotated log). */
export function consoleTail(vmDir: string, lines: number): string[] {
  return readConsoleTail(join(vmDir, VM_CONSOLE_LOG), lines);
}

/**
 * The error for a VM whose VMM exited before the guest answered SSH: the
 * console's last lines say why the guest died, and when the guest never
 * printed anything, the VMM's own output says why it did not run (memory it
 * could not map, a disk it could not open).
 */
export function bootFailure(vmDir: string, hint: string | undefined): BangerError {
  const console = consoleTail(vmDir, 5);
  const vmm = [...tailLines(join(vmDir, VM_VMM_LOG), 3), ...tailLines(join(vmDir, FIRECRACKER_LOG), 3)];
  const why =
    console.length > 0 ? `last console lines: ${console.join(' | ')}` : vmm.length > 0 ? `the VMM said: ${vmm.join(' | ')}` : 'nothing on its console';
  return new BangerError('ERR_VM_START_FAILED', `the VM stopped while booting (${why})`, { hint });
}
