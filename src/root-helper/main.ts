import { pino } from 'pino';

import { buildInfo } from '../build-info.js';
import { toBangerError } from '../rpc/errors.js';
import { HELPER_CONFIG, HELPER_SOCKET_DIR } from './protocol.js';
import { HelperServer, loadHelperConfig } from './server.js';

/**
 * banger-root: the root helper's entry point (bundled to dist/root-helper.cjs).
 *
 *   banger-root serve [--config FILE] [--socket-dir DIR] [--log FILE]
 *   banger-root --version
 *
 * `serve` runs until SIGTERM/SIGINT. `sudo banger system install` installs it
 * as a service; tests start their own instance with their own config.
 */

const USAGE = 'usage: banger-root serve [--config FILE] [--socket-dir DIR] [--log FILE] | banger-root --version';

function option(args: string[], name: string, fallback: string): string {
  const index = args.indexOf(name);
  if (index < 0) return fallback;
  const value = args[index + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value\n${USAGE}`);
  return value;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === '--version') {
    const { version, buildId } = buildInfo();
    process.stdout.write(`banger-root ${version} (build ${buildId})\n`);
    return 0;
  }
  if (args[0] !== 'serve') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const known = new Set(['--config', '--socket-dir', '--log']);
  for (let i = 1; i < args.length; i += 2) {
    if (!known.has(args[i] ?? '')) {
      process.stderr.write(`unknown option ${args[i] ?? ''}\n${USAGE}\n`);
      return 2;
    }
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('banger-root must run as root (it is the one privileged part of banger)\n');
    return 1;
  }
  const logFile = option(args, '--log', '');
  const log = pino(
    { base: { pid: process.pid, component: 'banger-root' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    logFile === '' ? pino.destination({ fd: 2, sync: true }) : pino.destination({ dest: logFile, append: true, sync: true, mkdir: true }),
  );
  process.umask(0o022);
  const server = new HelperServer(log);
  try {
    const config = loadHelperConfig(option(args, '--config', HELPER_CONFIG));
    await server.listen(config, option(args, '--socket-dir', HELPER_SOCKET_DIR));
  } catch (thrown) {
    const error = toBangerError(thrown);
    log.fatal({ code: error.code, hint: error.hint }, error.message);
    process.stderr.write(`banger-root: ${error.message}\n`);
    await server.close();
    return 1;
  }
  const { version, buildId } = buildInfo();
  log.info({ version, build_id: buildId }, 'banger-root ready');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await server.close();
  log.info('banger-root stopped');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`banger-root: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
