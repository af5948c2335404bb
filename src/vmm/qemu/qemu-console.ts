import { qmpCommand } from './qmp.js';

/** The id of the guest console's chardev on QEMU's command line (`-chardev socket,id=console,...`). */
export const CONSOLE_CHARDEV = 'console';

/** How many times (20 ms apart) to ask QEMU whether it has taken the console connection before resuming anyway. */
const ACCEPT_POLLS = 100;
const POLL_INTERVAL_MS = 20;

interface ChardevInfo {
  label: string;
  filename: string;
}

/**
 * Whether QEMU has accepted a client on the console chardev. QEMU names a
 * listening socket chardev `disconnected:unix:<path>,server=on` until it
 * accepts a client, `unix:<path>,server=on` while one is connected.
 */
export async function consoleConnected(qmpSocket: string): Promise<boolean> {
  const chardevs = (await qmpCommand(qmpSocket, 'query-chardev')) as ChardevInfo[];
  const console = chardevs.find((c) => c.label === CONSOLE_CHARDEV);
  return console !== undefined && !console.filename.startsWith('disconnected:');
}

/**
 * Resumes a guest QEMU holds stopped (-S) once QEMU has accepted the
 * console reader. A client's connect() completes as soon as the kernel
 * queues it, before QEMU's main loop accepts it, and bytes the guest writes
 * before that accept are dropped; so this waits until QEMU reports the
 * chardev connected. If it never does (or `connected` is false: the reader
 * could not connect), the guest is resumed anyway: a VM with a gap in its
 * console beats one that never boots. Returns whether the console was
 * connected when the guest was resumed. `cont` on a running guest does
 * nothing, so a second resume (a restarted daemon re-adopting the VM) is
 * harmless.
 */
export async function resumeWhenConsoleConnected(qmpSocket: string, connected = true): Promise<boolean> {
  let accepted = false;
  for (let poll = 0; connected && poll < ACCEPT_POLLS; poll++) {
    accepted = await consoleConnected(qmpSocket);
    if (accepted) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  await qmpCommand(qmpSocket, 'cont');
  return accepted;
}
