import { pino, type Logger } from 'pino';

/**
 * The daemon logs JSON lines (pino) to bangerd.log in the state dir. Every
 * line written while serving a request carries that request's `op_id`
 * (handlers get a child logger), so `grep op_id` reconstructs one request.
 * Writes are synchronous: the log is how a failed start is diagnosed, so a
 * line must be on disk before the process can die.
 */
export type { Logger };

export function createDaemonLogger(logPath: string, level = 'info'): Logger {
  const destination = pino.destination({ dest: logPath, append: true, sync: true, mkdir: true });
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
      },
    },
    destination,
  );
}
