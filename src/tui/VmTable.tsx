import { Box, Text } from 'ink';

import { COLUMNS, columnWidths, rowCells, stateColor } from './format.js';
import type { VmRow } from './model.js';

/** The VM list: a header and one line per VM, the selected one marked and inverted. */
export function VmTable({ rows, selected }: { rows: readonly VmRow[]; selected: number }) {
  if (rows.length === 0) return <Text dimColor>no VMs yet (press n to create one)</Text>;
  const lines = rows.map((row) => ({ vm: row.vm, cells: rowCells(row) }));
  const widths = columnWidths(lines.map((line) => line.cells));
  const pad = (text: string, column: (typeof COLUMNS)[number]): string => text.padEnd(widths[column]);
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate-end">
        {'  '}
        {COLUMNS.map((c) => pad(c, c)).join('  ')}
      </Text>
      {lines.map(({ vm, cells }, index) => (
        <Text key={vm.id} inverse={index === selected} wrap="truncate-end">
          {index === selected ? '> ' : '  '}
          {pad(cells.NAME, 'NAME')}
          {'  '}
          <Text color={stateColor(vm.state)}>{pad(cells.STATE, 'STATE')}</Text>
          {'  '}
          {COLUMNS.slice(2)
            .map((c) => pad(cells[c], c))
            .join('  ')}
        </Text>
      ))}
    </Box>
  );
}
