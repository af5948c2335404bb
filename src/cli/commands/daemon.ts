import { Command, InvalidArgumentError, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { buildInfo } from '../../build-info.js';
import type { PingResult } from '../../rpc/methods.js';
import { createContext, setExitCode } from '../context.js';
import { EXIT_NOT_RUNNING } from '../exit-codes.js';
import { stopDaemon } from '../daemon-connection.js';
import { followLog, formatLogLine, readLogTail } from '../log-view.js';
import { formatDuration } from '../render/text.js';

export function daemonCommand(): CommandUnknownOpts {
  const daemon = new Command('daemon').description('Manage bangerd, the per-user daemon that owns VMs and state').addHelpText(
    'after',
    `
bangerd starts on demand: any banger command that needs it starts it, and a
daemon left over from an older banger build is replaced automatically.`,
  );

  daemon
    .command('start')
    .description('Start bangerd if it is not running')
    .action(async (_options, command) => {
      const cli = createContext(command, { quietStart: true });
      const before = await cli.runningDaemon();
      const ping = await (await cli.daemon()).call('ping', {}, { signal: cli.signal });
      const alreadyRunning = before?.ping.pid === ping.pid;
      cli.out.result({ ...ping, alreadyRunning }, (ping) =>
        ping.alreadyRunning ? `bangerd is already running (pid ${ping.pid})` : `bangerd started (pid ${ping.pid})`,
      );
    });

  daemon
    .command('stop')
    .description('Stop bangerd gracefully (in-flight requests finish or are cancelled)')
    .action(async (_options, command) => {
      const cli = createContext(command);
      const connection = await cli.runningDaemon();
      if (connection === undefined) {
        cli.out.result({ running: false, stopped: false }, () => 'bangerd is not running');
        return;
      }
      await stopDaemon(connection);
      cli.out.result({ running: false, stopped: true, pid: connection.ping.pid }, (r) => `bangerd stopped (pid ${r.pid})`);
    });

  daemon
    .command('status')
    .description('Show whether bangerd is running, its pid, build and socket')
    .addHelpText('after', '\nExit status: 0 when bangerd is running, 3 when it is not (scripts can test it); it never starts the daemon.')
    .action(async (_options, command) => {
      const cli = createContext(command);
      const connection = await cli.runningDaemon();
      if (connection === undefined) {
        cli.out.result(
          { running: false, socketPath: cli.layout.socketPath, logPath: cli.layout.daemonLog },
          (s) => `bangerd is not running (socket ${s.socketPath})`,
        );
        setExitCode(EXIT_NOT_RUNNING);
        return;
      }
      const status = { running: true, stale: connection.ping.buildId !== buildInfo().buildId, ...connection.ping };
      cli.out.result(status, renderStatus);
    });

  daemon
    .command('logs')
    .description("Show the daemon's log (JSON lines in the state dir)")
    .option('-n, --lines <count>', 'number of lines to show from the end', parseCount, 50)
    .option('-f, --follow', 'keep printing new lines until interrupted')
    .option('--op <op_id>', 'only lines of one request (the op id printed with errors under --verbose)')
    .action(async (options, command) => {
      const cli = createContext(command);
      const print = (line: string): void => {
        if (options.op !== undefined && !line.includes(`"op_id":"${options.op}"`)) return;
        if (cli.out.json) process.stdout.write(line + '\n');
        else process.stdout.write(formatLogLine(line) + '\n');
      };
      const { lines, size } = readLogTail(cli.layout.daemonLog, options.op === undefined ? options.lines : Infinity);
      let shown = 0;
      for (const line of lines.slice(options.op === undefined ? 0 : -options.lines)) {
        print(line);
        shown++;
      }
      if (shown === 0 && !cli.out.json && options.follow !== true) cli.out.notice(`no log lines in ${cli.layout.daemonLog}`);
      if (options.follow === true) await followLog(cli.layout.daemonLog, size, print, cli.signal);
    });

  return daemon;
}

function renderStatus(s: PingResult & { stale: boolean }): string {
  const uptime = formatDuration(Date.now() - Date.parse(s.startedAt));
  return [
    `bangerd is running (pid ${s.pid}, up ${uptime})`,
    `  version:   ${s.version} (build ${s.buildId}${s.stale ? ', stale: differs from this banger; the next command restarts it' : ''})`,
    `  socket:    ${s.socketPath}`,
    `  state dir: ${s.stateDir}`,
    `  log:       ${s.logPath}`,
    ...(s.network === undefined
      ? []
      : [
          `  network:   ${s.network.bridge} ${s.network.subnet}, DNS on port ${s.network.dnsPort}, privileged changes ${s.network.privileged === 'helper' ? 'by the root helper' : 'in process (root)'}${s.network.ready ? '' : ' (not set up yet)'}`,
          `  tap pool:  ${s.network.pool.idle.length}/${s.network.pool.size} idle${s.network.pool.idle.length > 0 ? ` (${s.network.pool.idle.join(', ')})` : ''}, ${s.network.pool.inUse.length} in use`,
          ...(s.network.resolver === null ? [] : [`  resolver:  ${s.network.resolver}`]),
        ]),
  ].join('\n');
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  return n;
}
