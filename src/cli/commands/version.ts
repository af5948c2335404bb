import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { buildInfo } from '../../build-info.js';
import { createContext } from '../context.js';

export function versionCommand(): CommandUnknownOpts {
  return new Command('version').description("Show banger's version and build, and the running daemon's if there is one").action(async (_options, command) => {
    const cli = createContext(command);
    const connection = await cli.runningDaemon();
    const daemon = connection === undefined ? null : { version: connection.ping.version, buildId: connection.ping.buildId, pid: connection.ping.pid };
    cli.out.result({ client: buildInfo(), node: process.version, daemon }, (v) =>
      [
        `banger ${v.client.version} (build ${v.client.buildId}, node ${v.node})`,
        v.daemon === null ? 'bangerd: not running' : `bangerd ${v.daemon.version} (build ${v.daemon.buildId}, pid ${v.daemon.pid})`,
      ].join('\n'),
    );
  });
}
