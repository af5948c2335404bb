import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';

import { connect, type BangerClient, type ConnectOptions } from '../sdk/index.js';
import type { ProgressEvent } from '../rpc/methods.js';

/** What the tools need from the server: a daemon connection and a way to report progress. */
export interface ToolContext {
  client: () => Promise<BangerClient>;
  progress: (extra: RequestHandlerExtra<ServerRequest, ServerNotification>) => ((event: ProgressEvent) => void) | undefined;
  close: () => void;
}

/**
 * The daemon connection is made on the first tool call (starting bangerd
 * when needed, as the CLI does), not at server start, so an agent client
 * that only lists tools costs nothing. A connection the daemon closed (it was
 * restarted or upgraded) is replaced on the next call.
 */
export function toolContext(options: ConnectOptions = {}): ToolContext {
  let current: Promise<BangerClient> | undefined;
  let connected: BangerClient | undefined;
  const client = async (): Promise<BangerClient> => {
    if (connected !== undefined) {
      if (!connected.closed) return connected;
      connected = undefined;
      current = undefined;
    }
    // Concurrent first calls share one connect.
    current ??= connect(options);
    try {
      connected = await current;
      return connected;
    } catch (error) {
      current = undefined;
      throw error;
    }
  };
  return {
    client,
    progress: (extra) => {
      const token = extra._meta?.progressToken;
      if (token === undefined) return undefined;
      let step = 0;
      // MCP progress must increase: each banger stage or byte count is one more step, its text the message.
      return (event) => {
        step++;
        const counted = event.current !== undefined && event.total !== undefined ? ` (${event.current}/${event.total})` : '';
        void extra
          .sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: step, message: `${event.stage}: ${event.detail}${counted}` },
          })
          .catch(() => undefined);
      };
    },
    close: () => {
      connected?.close();
      connected = undefined;
      current = undefined;
    },
  };
}
