import type { Logger } from 'pino';

/**
 * What a service operation gets from whoever invoked it (the daemon's RPC
 * server for requests, tests directly): an id for its log lines, a signal
 * that cancels it, a logger and a progress sink. Defined here, not in the
 * daemon, so services depend on nothing above them.
 */
export interface OpContext {
  /** Unique id of this operation: in every log line it causes and in its error. */
  opId: string;
  /** Aborted when the client cancels or disconnects, or when shutdown gives up waiting. */
  signal: AbortSignal;
  /** Logger bound to this operation's op_id. */
  log: Logger;
  /**
   * Reports progress to the client (when it asked for it). A new stage is
   * also logged; repeated reports of the same stage (byte counts) are not.
   */
  progress: (stage: string, detail: string, counts?: { current: number; total?: number | undefined }) => void;
  /**
   * Sends a JSON-RPC notification on the request's connection (daemon.events
   * pushes its events so); dropped once the request is cancelled. Absent
   * where there is no client connection (startup work, tests).
   */
  notify?: (method: string, params: object) => void;
}
