import { Box, Text } from 'ink';
import { useEffect, useState } from 'react';

import type { TuiActions } from './actions.js';
import { printable } from './format.js';
import { errorStatus, type Status } from './model.js';
import { StatusLine } from './widgets.js';

/** How often the open pane re-reads the console (it has no push event; nothing polls while the pane is closed). */
export const LOG_REFRESH_MS = 1000;

/**
 * The `l` pane: the tail of a VM's serial console (vm.logs), re-read every
 * `refreshMs` while it is open: each read is scheduled after the previous
 * one answered, so a slow daemon never gets a pile of them.
 */
export function LogsPane({ vm, actions, lines, refreshMs = LOG_REFRESH_MS }: { vm: string; actions: TuiActions; lines: number; refreshMs?: number }) {
  const [log, setLog] = useState<readonly string[] | null>(null);
  const [error, setError] = useState<Status | null>(null);
  useEffect(() => {
    let open = true;
    let timer: NodeJS.Timeout | undefined;
    const refresh = async (): Promise<void> => {
      try {
        const tail = await actions.logs(vm, lines);
        if (open) {
          setLog(tail);
          setError(null);
        }
      } catch (failure) {
        if (open) setError(errorStatus(failure));
      }
      if (open) timer = setTimeout(() => void refresh(), refreshMs);
    };
    void refresh();
    return () => {
      open = false;
      clearTimeout(timer);
    };
  }, [vm, lines, refreshMs, actions]);
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>console of {vm}</Text>
      {log === null && error === null ? <Text dimColor>reading…</Text> : null}
      {log?.length === 0 ? <Text dimColor>(the console is empty)</Text> : null}
      {log?.map((line, index) => (
        <Text key={index} wrap="truncate-end">
          {printable(line)}
        </Text>
      ))}
      <StatusLine status={error} />
    </Box>
  );
}
