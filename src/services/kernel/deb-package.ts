import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

import { BangerError } from '../../rpc/errors.js';
import { readArArchive } from './ar-archive.js';

/**
 * Unpacks the data archive of a .deb (an `ar` archive whose data.tar.xz holds
 * the package's files) into `dest`, limited to the given paths. The ar layer
 * is read here; the tar.xz layer is handed to the host's tar.
 */
export async function unpackDebData(debPath: string, dest: string, paths: readonly string[], signal?: AbortSignal): Promise<void> {
  const members = readArArchive(readFileSync(debPath));
  const data = members.find((m) => m.name.startsWith('data.tar'));
  if (data === undefined) throw new BangerError('ERR_INVALID_ARGUMENT', `${debPath} has no data.tar member`);
  const flag = data.name.endsWith('.xz') ? '-J' : data.name.endsWith('.zst') ? '--zstd' : data.name.endsWith('.gz') ? '-z' : '';
  mkdirSync(dest, { recursive: true });
  await new Promise<void>((resolve, reject) => {
    const args = ['-x', ...(flag === '' ? [] : [flag]), '-C', dest, '--no-same-owner', '--wildcards', ...paths];
    const tar = spawn('tar', args, { stdio: ['pipe', 'ignore', 'pipe'], ...(signal === undefined ? {} : { signal }) });
    let stderr = '';
    tar.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    tar.on('error', reject);
    tar.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new BangerError('ERR_HOST_COMMAND_FAILED', `unpacking ${debPath} failed: ${stderr.trim()}`, {
            hint: 'the download may be corrupt; delete the cache and pull again',
          }),
        );
    });
    tar.stdin.on('error', () => undefined);
    tar.stdin.end(data.data);
  });
}
