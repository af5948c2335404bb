import { homedir } from 'node:os';

import { Command } from '@commander-js/extra-typings';

import { formatSpec } from '../../config/vm-defaults.js';
import type { WorkspaceInfo } from '../../rpc/methods.js';
import { createContext } from '../context.js';
import { formatDuration, table } from '../render/text.js';

/**
 * `vm list` (aliases `ls`, `ps`), and the top-level `banger ps` docker users
 * reach for: the same command under two parents, so both stay identical.
 */
export function vmListCommand(name: 'list' | 'ps'): Command {
  const command = new Command(name);
  if (name === 'list') command.aliases(['ls', 'ps']);
  return command.description('List VMs with their state, image, address, spec and workspace').action(async (_options, cmd) => {
    const cli = createContext(cmd);
    const result = await cli.call('vmList', {});
    cli.out.result(result, ({ vms }) =>
      vms.length === 0
        ? 'no VMs (create one with `banger vm run -- <command>` or `banger vm create`)'
        : table([
            ['NAME', 'ID', 'STATE', 'IMAGE', 'IP', 'SPEC', 'WORKSPACE', 'CREATED'],
            ...vms.map((v) => [
              v.name,
              v.id,
              v.state,
              v.image,
              v.ip,
              formatSpec(v.spec),
              workspaceCell(v.workspace),
              `${formatDuration(Date.now() - Date.parse(v.createdAt))} ago`,
            ]),
          ]),
    );
  });
}

/** `~/src/app@1a2b3c4d` for the list: where it came from and at which commit. */
function workspaceCell(ws: WorkspaceInfo | null): string {
  if (ws === null) return '-';
  const home = homedir();
  const source = ws.sourcePath === home || ws.sourcePath.startsWith(`${home}/`) ? `~${ws.sourcePath.slice(home.length)}` : ws.sourcePath;
  return `${source}@${ws.baseCommit.slice(0, 8)}`;
}
