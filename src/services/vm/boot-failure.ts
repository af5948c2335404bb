import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

import { VM_CONSOLE_LOG, VM_VMM_LOG } from '../../config/filenames.js';
import { FIRECRACKER_LOG } from '../../vmm/firecracker/firecracker-driver.js';
import { BangerError } from '../../rpc/errors.js';
import { readConsoleTail } from './console-log.js';

/** How much of a log's end is read for its last lines: enough for a screenful, never the whole file. */
const TAIL_BYTES = 64 * 1024;

/** The last `lines` non-empty lines of a file, reading only its end. */
export function tailLines(path: string, lines: number): string[] {
  if (!existsSync(path)) return [];
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const text = buffer.toString('utf8');
    const all = text.split('\n');
    if (length < size) all.shift(); // the first line is cut
    return all.filter((l) => l.trim() !== '').slice(-lines);
  } finally {
    closeSync(fd);
  }
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
