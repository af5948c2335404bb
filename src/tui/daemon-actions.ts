import { resolve } from 'node:path';
import { PassThrough } from 'node:stream';

import { exportWorkspace } from '../cli/commands/workspace.js';
import type { CliContext } from '../cli/context.js';
import { sshArgs } from '../cli/guest-ssh.js';
import { StreamClient } from '../cli/stream-client.js';
import type { RpcClient } from '../rpc/client.js';
import type { TuiActions } from './actions.js';

/**
 * The TUI's actions over the daemon: the CLI's own connection (auto-started
 * daemon, stale-build replacement) and the same methods the `vm` commands
 * call. Nothing here writes to the terminal, which belongs to ink.
 */
export function daemonActions(
  cli: CliContext,
  client: RpcClient,
  /** Leaves the TUI, runs ssh with these arguments on the terminal, comes back; resolves with ssh's status. */
  runOutsideTui: (sshArguments: string[]) => Promise<number>,
  /** Stream notices and stderr (e.g. from an export): shown in the status line, never written over the screen. */
  onNotice: (text: string) => void,
): TuiActions {
  const lifecycle = (key: 'vmStart' | 'vmStop' | 'vmRestart' | 'vmDelete') => (vm: string) => client.call(key, { ref: vm });
  // exportWorkspace (what `vm workspace export -o` runs) writes the patch atomically; its stream's
  // stderr and notices go to the status line instead of the CLI's stderr.
  const quietCli: CliContext = {
    ...cli,
    openStream: async (sinks) => {
      await cli.daemon();
      const stderr = new PassThrough();
      stderr.on('data', (chunk: Buffer) => {
        onNotice(chunk.toString('utf8').trim());
      });
      return StreamClient.open(cli.layout.socketPath, { stdout: sinks.stdout, stderr, onNotice });
    },
  };
  return {
    subscribe: (onEvent, signal) => client.subscribe(onEvent, { signal }),
    start: lifecycle('vmStart'),
    stop: lifecycle('vmStop'),
    restart: lifecycle('vmRestart'),
    delete: lifecycle('vmDelete'),
    defaults: () => client.call('vmDefaults', {}),
    create: (spec, onProgress) => client.call('vmCreate', { ...spec }, { onProgress }),
    logs: async (vm, lines) => (await client.call('vmLogs', { ref: vm, lines })).lines,
    exportPatch: async (vm, path) => {
      const result = await exportWorkspace(quietCli, vm, { output: path, stat: false });
      return { path: resolve(path), files: result.files.length, bytes: result.bytes };
    },
    ssh: async (vm) => {
      // Asked for while the TUI is still up, so a VM that is not running is an error in the status line.
      const target = await client.call('vmSshTarget', { ref: vm });
      return runOutsideTui(sshArgs(target, { interactive: true, tty: true }));
    },
  };
}
