import { formatBytes, formatDuration } from '../cli/render/text.js';
import type { VmInfo, VmStatsSample, WorkspaceInfo } from '../rpc/methods.js';
import type { VmRow } from './model.js';

/** The table's text, cell by cell (pure: the components only lay it out and colour it). */

export const COLUMNS = ['NAME', 'STATE', 'IP', 'IMAGE', 'SPEC', 'WORKSPACE', 'UPTIME', 'CPU', 'MEM'] as const;

export type RowCells = Record<(typeof COLUMNS)[number], string>;

export function rowCells(row: VmRow): RowCells {
  const { vm, sample } = row;
  return {
    NAME: vm.name,
    STATE: vm.state,
    IP: vm.ip,
    IMAGE: vm.image,
    SPEC: `${vm.spec.vcpu} vcpu · ${vm.spec.memoryMiB} MiB`,
    WORKSPACE: workspaceCell(vm.workspace),
    UPTIME: uptimeCell(sample),
    CPU: sample === null ? '-' : `${Math.round(sample.vmm.cpuPercent)}%`,
    MEM: memoryCell(sample),
  };
}

/** Each column as wide as its widest cell (header included). */
export function columnWidths(cells: readonly RowCells[]): Record<keyof RowCells, number> {
  const widths = Object.fromEntries(COLUMNS.map((c) => [c, c.length])) as Record<keyof RowCells, number>;
  for (const row of cells) for (const c of COLUMNS) widths[c] = Math.max(widths[c], row[c].length);
  return widths;
}

/** `/root/repo@1a2b3c4d`: where the repo is in the guest and the commit it was prepared from. */
export function workspaceCell(ws: WorkspaceInfo | null): string {
  return ws === null ? '-' : `${ws.guestPath}@${ws.baseCommit.slice(0, 8)}`;
}

/** The guest's uptime as of its latest sample. */
function uptimeCell(sample: VmStatsSample | null): string {
  return sample?.guest == null ? '-' : formatDuration(sample.guest.uptimeSeconds * 1000);
}

/** Guest memory in use (total less available) of its total; the VMM's RSS when the guest did not answer. */
function memoryCell(sample: VmStatsSample | null): string {
  if (sample === null) return '-';
  if (sample.guest === null) return `rss ${formatBytes(sample.vmm.rssBytes)}`;
  const { memTotalBytes, memAvailableBytes } = sample.guest;
  return `${formatBytes(memTotalBytes - memAvailableBytes)} / ${formatBytes(memTotalBytes)}`;
}

/** Colour of a state in the table. */
export function stateColor(state: VmInfo['state']): string {
  switch (state) {
    case 'running':
      return 'green';
    case 'failed':
      return 'red';
    case 'stopped':
    case 'created':
      return 'gray';
    case 'creating':
    case 'starting':
    case 'stopping':
      return 'yellow';
  }
}

/**
 * A console line made safe to draw: the serial console carries the guest's
 * escape sequences and carriage returns, which would move ink's cursor.
 */
export function printable(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '').replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '');
}
