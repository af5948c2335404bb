import { Command } from '@commander-js/extra-typings';

import type { DaemonEvent, GuestPortInfo, VmStatsInfo, VmStatsSample } from '../../rpc/methods.js';
import { createContext, type CliContext } from '../context.js';
import { formatBytes, formatDuration, table } from '../render/text.js';

/** `banger vm stats [vm] [--watch]`: the latest sample of each running VM (or one VM), live with --watch. */
export function vmStatsCommand(): Command<[string | undefined], { watch?: true }> {
  return new Command('stats')
    .description('Show CPU, memory, load, disk and uptime of running VMs (sampled by the daemon)')
    .argument('[vm]', 'name or id (default: every running VM)')
    .option('-w, --watch', 'keep the table up to date as new samples arrive, until Ctrl-C')
    .addHelpText(
      'after',
      `
The daemon samples every running VM every stats_poll_interval (config.toml,
default 5s): CPU% and RSS of its VMM process on the host (100% = one host CPU),
and from inside the guest its memory (used/total), load averages, /root disk
and uptime. A dash means the guest did not answer that time.
With --json: the result object; with --watch, one { vm: { id, name }, sample }
JSON line per sample.`,
    )
    .action(async (ref, options, command) => {
      const cli = createContext(command);
      const result = await cli.call('vmStats', ref === undefined ? {} : { ref });
      if (options.watch === true) await watchStats(cli, ref === undefined ? undefined : result.stats[0]?.vm, result.stats);
      else cli.out.result(result, ({ stats }) => renderStatsTable(stats, ref === undefined));
    });
}

/** `banger vm ports <vm>`: the guest's listening sockets. */
export function vmPortsCommand(): Command<[string]> {
  return new Command('ports')
    .description("List a running VM's listening TCP and UDP ports, their processes and where the host reaches them")
    .argument('<vm>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      const result = await cli.call('vmPorts', { ref });
      cli.out.result(result, (r) => renderPortsTable(r.vm, r.ports));
    });
}

export function renderPortsTable(vm: string, ports: readonly GuestPortInfo[]): string {
  if (ports.length === 0) return `no listening ports in ${vm}`;
  return table([
    ['PROTO', 'ADDRESS', 'PORT', 'PROCESS', 'PID', 'HOST ADDRESS'],
    ...ports.map((p) => [p.proto, p.bindAddress, String(p.port), p.process ?? '-', p.pid === null ? '-' : String(p.pid), p.hostAddress ?? '- (guest only)']),
  ]);
}

/** The stats table; `all` (no VM named) explains an empty one. */
export function renderStatsTable(stats: readonly Pick<VmStatsInfo, 'vm' | 'state' | 'latest'>[], all: boolean): string {
  if (stats.length === 0) return all ? 'no running VMs' : '';
  return table([['NAME', 'CPU%', 'RSS', 'MEM(used/total)', 'LOAD', 'DISK', 'UPTIME'], ...stats.map((s) => statsRow(s.vm, s.state, s.latest))]);
}

function statsRow(vm: string, state: VmStatsInfo['state'], sample: VmStatsSample | null): string[] {
  if (sample === null) return [vm, state === 'running' ? '-' : `(${state})`, '-', '-', '-', '-', '-'];
  const guest = sample.guest;
  return [
    vm,
    `${sample.vmm.cpuPercent.toFixed(1)}%`,
    formatBytes(sample.vmm.rssBytes),
    guest === null ? '-' : `${formatBytes(guest.memTotalBytes - guest.memAvailableBytes)}/${formatBytes(guest.memTotalBytes)}`,
    guest === null ? '-' : [guest.load1, guest.load5, guest.load15].map((l) => l.toFixed(2)).join(' '),
    guest?.diskTotalBytes == null || guest.diskUsedBytes === null ? '-' : `${formatBytes(guest.diskUsedBytes)}/${formatBytes(guest.diskTotalBytes)}`,
    guest === null ? '-' : formatDuration(guest.uptimeSeconds * 1000),
  ];
}

/** One line for `vm show`: `cpu 12.5% · rss 250.1 MiB · mem 80.0 MiB/1.9 GiB · load 0.10 · disk 24.0 KiB/7.8 GiB · up 5m3s (at …)`. */
export function formatStatsSummary(sample: VmStatsSample): string {
  const parts = [`cpu ${sample.vmm.cpuPercent.toFixed(1)}%`, `rss ${formatBytes(sample.vmm.rssBytes)}`];
  const guest = sample.guest;
  if (guest !== null) {
    parts.push(`mem ${formatBytes(guest.memTotalBytes - guest.memAvailableBytes)}/${formatBytes(guest.memTotalBytes)}`, `load ${guest.load1.toFixed(2)}`);
    if (guest.diskTotalBytes !== null && guest.diskUsedBytes !== null)
      parts.push(`disk ${formatBytes(guest.diskUsedBytes)}/${formatBytes(guest.diskTotalBytes)}`);
    parts.push(`up ${formatDuration(guest.uptimeSeconds * 1000)}`);
  }
  return `${parts.join(' · ')} (at ${sample.at})`;
}

/**
 * --watch: re-renders on every vm.stats event of a daemon.events
 * subscription (no polling), and follows VMs starting, stopping and going
 * away. Ctrl-C ends the subscription and the command (status 0, like
 * `daemon logs --follow`).
 */
async function watchStats(cli: CliContext, only: string | undefined, initial: readonly VmStatsInfo[]): Promise<void> {
  const rows = new Map<string, { vm: string; state: VmStatsInfo['state']; latest: VmStatsSample | null }>();
  for (const info of initial) rows.set(info.vm, { vm: info.vm, state: info.state, latest: info.latest });
  const wanted = (name: string): boolean => only === undefined || name === only;
  const tty = process.stdout.isTTY;
  const interval = initial[0]?.intervalMs;
  const render = (): void => {
    const text = renderStatsTable([...rows.values()], only === undefined);
    const footer = `(${interval === undefined ? '' : `sampled every ${formatDuration(interval)}; `}Ctrl-C to stop)`;
    cli.out.line(tty ? `\x1b[H\x1b[2J${text}\n\n${footer}` : `${text}\n`);
  };
  // JSON lines on stdout, as `daemon logs --follow --json` prints them: one document per sample.
  const printSample = (vm: { id: string; name: string }, sample: VmStatsSample): void => {
    process.stdout.write(JSON.stringify({ vm, sample }) + '\n');
  };
  if (cli.out.json) {
    for (const info of initial) if (info.latest !== null) printSample({ id: info.id, name: info.vm }, info.latest);
  } else render();
  const onEvent = (event: DaemonEvent): void => {
    if (!wanted(event.vm.name)) return;
    if (event.kind === 'vm.stats') {
      rows.set(event.vm.name, { vm: event.vm.name, state: 'running', latest: event.sample });
      if (cli.out.json) printSample(event.vm, event.sample);
      else render();
      return;
    }
    if (cli.out.json) return;
    if (event.kind === 'vm.deleted') rows.delete(event.vm.name);
    else if (event.vm.state === 'running' || only !== undefined) {
      const row = rows.get(event.vm.name);
      if (row?.state === event.vm.state) return;
      rows.set(event.vm.name, { vm: event.vm.name, state: event.vm.state, latest: event.vm.state === 'running' ? (row?.latest ?? null) : null });
    } else if (!rows.delete(event.vm.name)) return;
    render();
  };
  const client = await cli.daemon();
  await client.subscribe(onEvent, { kinds: ['vm.stats', 'vm.changed', 'vm.deleted'], signal: cli.signal });
}
