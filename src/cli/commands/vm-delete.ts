import { Command } from '@commander-js/extra-typings';

import { BangerError, toBangerError, type ErrorCode } from '../../rpc/errors.js';
import type { VmInfo } from '../../rpc/methods.js';
import { createContext, setExitCode } from '../context.js';
import { EXIT_FAILURE } from '../exit-codes.js';

/** What `vm delete` prints with --json for several VMs (or --all); one VM prints its VmInfo. */
export interface VmDeleteManyResult {
  deleted: VmInfo[];
  failed: { ref: string; code: ErrorCode; message: string; hint: string | null }[];
}

/**
 * `vm delete <vm...>` (alias `rm`): deletes each VM in turn, a running one
 * killed first. One failure does not stop the others; the command then exits
 * 1 and says which failed. `--all` deletes every VM and needs `--force`, so
 * a stray `--all` cannot wipe everything.
 */
export function vmDeleteCommand(): Command<[string[]]> {
  return new Command('delete')
    .alias('rm')
    .description('Delete VMs and their disks (a running VM is killed first)')
    .argument('[vm...]', 'names or ids (or unique prefixes)')
    .option('-a, --all', 'delete every VM (needs --force)')
    .option('-f, --force', 'confirm --all')
    .addHelpText(
      'after',
      `
With one VM, --json prints that VM; with several (or --all), {"deleted": [...], "failed": [...]}.
Exit status: 0 when every VM was deleted, 1 when any failed (the rest are still deleted).`,
    )
    .action(async (refs, options, command) => {
      const cli = createContext(command);
      if (options.all === true && refs.length > 0)
        throw new BangerError('ERR_USAGE', '--all deletes every VM: name none with it', { hint: 'banger vm delete --all --force' });
      if (options.all === true && options.force !== true)
        throw new BangerError('ERR_USAGE', 'refusing to delete every VM without --force', { hint: 'banger vm delete --all --force' });
      if (options.all !== true && refs.length === 0)
        throw new BangerError('ERR_USAGE', 'name the VMs to delete', { hint: 'banger vm delete <vm...>, or --all --force for every VM' });

      if (refs.length === 1 && options.all !== true) {
        const info = await cli.callWithProgress('vmDelete', { ref: refs[0] ?? '' });
        cli.out.result(info, (v) => `deleted VM ${v.name} (${v.id})`);
        return;
      }
      const targets = options.all === true ? (await cli.call('vmList', {})).vms.map((v) => v.id) : [...new Set(refs)];
      const result: VmDeleteManyResult = { deleted: [], failed: [] };
      for (const ref of targets) {
        if (cli.signal.aborted) break;
        try {
          const info = await cli.callWithProgress('vmDelete', { ref });
          result.deleted.push(info);
          cli.out.debug(`deleted VM ${info.name} (${info.id})`);
        } catch (thrown) {
          const error = toBangerError(thrown);
          if (error.code === 'ERR_CANCELLED') throw error;
          result.failed.push({ ref, code: error.code, message: `${ref}: ${error.message}`, hint: error.hint ?? null });
          // Said as it happens, on stderr; --json carries it in `failed` instead.
          if (!cli.out.json) cli.out.error(new BangerError(error.code, `${ref}: ${error.message}`, { hint: error.hint }));
        }
      }
      cli.out.result(result, renderDeleted);
      if (result.failed.length > 0) setExitCode(EXIT_FAILURE);
    });
}

function renderDeleted(result: VmDeleteManyResult): string {
  const lines = result.deleted.map((v) => `deleted VM ${v.name} (${v.id})`);
  if (result.deleted.length === 0 && result.failed.length === 0) lines.push('no VMs to delete');
  return lines.join('\n');
}
