import { Box, Text, useApp, useInput, useStdout } from 'ink';
import { useState, useSyncExternalStore } from 'react';

import type { VmInfo } from '../rpc/methods.js';
import { formatBytes } from '../cli/render/text.js';
import type { TuiActions } from './actions.js';
import { CreateForm } from './CreateForm.js';
import { ExportPrompt } from './ExportPrompt.js';
import { LogsPane } from './LogsPane.js';
import { errorStatus, selectedIndex, selectedRow, type TuiStore } from './model.js';
import { VmTable } from './VmTable.js';
import { StatusLine } from './widgets.js';

/** What the screen is doing besides showing the table. */
type Mode = { kind: 'list' } | { kind: 'confirmDelete'; vm: string } | { kind: 'create' } | { kind: 'logs'; vm: string } | { kind: 'export'; vm: string };

const HELP: Record<Mode['kind'], string> = {
  list: '↑/↓ select · s start · x stop · r restart · d delete · enter ssh · l logs · e export patch · n new VM · q quit',
  confirmDelete: 'y delete · n cancel',
  create: 'tab/↑/↓ field · enter create · esc cancel',
  logs: 'l/esc close the console · q quit',
  export: 'enter export · esc cancel',
};

export interface AppProps {
  store: TuiStore;
  actions: TuiActions;
  /** For tests: how often the console pane re-reads (default LOG_REFRESH_MS). */
  logRefreshMs?: number;
}

/**
 * The whole screen: the VM table (from the store, which the event stream
 * feeds), the pane of the current mode, the status line and the key help.
 * Actions run in the background: the status line says what is going on and
 * how it ended; the table changes when the daemon's events say so.
 */
export function App({ store, actions, logRefreshMs }: AppProps) {
  const model = useSyncExternalStore(store.subscribe, store.getModel);
  const [mode, setMode] = useState<Mode>({ kind: 'list' });
  const { exit } = useApp();
  const { stdout } = useStdout();

  const run = <T,>(busy: string, action: () => Promise<T>, done: (result: T) => string): void => {
    store.dispatch({ type: 'status', status: { kind: 'busy', text: busy } });
    action().then(
      (result) => {
        store.dispatch({ type: 'status', status: { kind: 'info', text: done(result) } });
      },
      (error: unknown) => {
        store.dispatch({ type: 'status', status: errorStatus(error) });
      },
    );
  };
  const lifecycle = (busy: string, verb: string, action: (vm: string) => Promise<VmInfo>, vm: string): void => {
    run(
      `${busy} ${vm}`,
      () => action(vm),
      (v) => `${verb} ${v.name} (${v.state})`,
    );
  };

  useInput(
    (input, key) => {
      if (input === 'q') {
        exit();
        return;
      }
      if (key.upArrow || input === 'k') store.dispatch({ type: 'move', by: -1 });
      else if (key.downArrow || input === 'j') store.dispatch({ type: 'move', by: 1 });
      else if (input === 'n') setMode({ kind: 'create' });
      // From the store, not this render: a key right after a move acts on the VM the move selected.
      const vm = selectedRow(store.getModel())?.vm.name;
      if (vm === undefined) return;
      if (input === 's') lifecycle('starting', 'started', actions.start, vm);
      else if (input === 'x') lifecycle('stopping', 'stopped', actions.stop, vm);
      else if (input === 'r') lifecycle('restarting', 'restarted', actions.restart, vm);
      else if (input === 'd') setMode({ kind: 'confirmDelete', vm });
      else if (input === 'l') setMode({ kind: 'logs', vm });
      else if (input === 'e') setMode({ kind: 'export', vm });
      else if (key.return)
        run(
          `opening ssh to ${vm}`,
          () => actions.ssh(vm),
          (status) => (status === 0 ? `ssh to ${vm} ended` : `ssh to ${vm} exited with status ${status}`),
        );
    },
    { isActive: mode.kind === 'list' },
  );

  useInput(
    (input, key) => {
      if (mode.kind === 'confirmDelete') {
        if (input === 'y') {
          lifecycle('deleting', 'deleted', actions.delete, mode.vm);
          setMode({ kind: 'list' });
        } else if (input === 'n' || key.escape) {
          store.dispatch({ type: 'status', status: { kind: 'info', text: `kept ${mode.vm}` } });
          setMode({ kind: 'list' });
        }
      } else if (mode.kind === 'logs') {
        if (input === 'q') exit();
        else if (input === 'l' || key.escape) setMode({ kind: 'list' });
      }
    },
    { isActive: mode.kind === 'confirmDelete' || mode.kind === 'logs' },
  );

  return (
    <Box flexDirection="column">
      <Text bold>
        banger · {model.rows.length} VM{model.rows.length === 1 ? '' : 's'}
        {model.stream === 'lost' ? <Text color="red"> · event stream lost: the table no longer updates</Text> : null}
      </Text>
      <VmTable rows={model.rows} selected={selectedIndex(model)} />
      {mode.kind === 'confirmDelete' ? <Text color="red">delete VM {mode.vm} and its disks? (y/n)</Text> : null}
      {mode.kind === 'create' ? (
        <CreateForm
          actions={actions}
          onCancel={() => {
            setMode({ kind: 'list' });
          }}
          onCreated={(vm) => {
            store.dispatch({ type: 'status', status: { kind: 'info', text: `created ${vm.name} (${vm.state}, ${vm.ip})` } });
            setMode({ kind: 'list' });
          }}
        />
      ) : null}
      {mode.kind === 'logs' ? (
        <LogsPane
          vm={mode.vm}
          actions={actions}
          lines={logLines(stdout.rows, model.rows.length)}
          {...(logRefreshMs === undefined ? {} : { refreshMs: logRefreshMs })}
        />
      ) : null}
      {mode.kind === 'export' ? (
        <ExportPrompt
          vm={mode.vm}
          onCancel={() => {
            setMode({ kind: 'list' });
          }}
          onSubmit={(path) => {
            const vm = mode.vm;
            setMode({ kind: 'list' });
            run(
              `exporting the workspace of ${vm} to ${path}`,
              () => actions.exportPatch(vm, path),
              (r) => `wrote ${r.files} changed file${r.files === 1 ? '' : 's'} (${formatBytes(r.bytes)}) of ${vm} to ${r.path}`,
            );
          }}
        />
      ) : null}
      <StatusLine status={model.status} />
      <Text dimColor>{HELP[mode.kind]}</Text>
    </Box>
  );
}

/** Console lines that fit under the table: the terminal's height less the table and the other lines (at least 5). */
function logLines(terminalRows: number | undefined, vmRows: number): number {
  return Math.max(5, (terminalRows ?? 24) - vmRows - 9);
}
