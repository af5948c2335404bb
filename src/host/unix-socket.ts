import { existsSync } from 'node:fs';
import { connect } from 'node:net';

/**
 * Whether a unix socket accepts a connection now (the probe connection is
 * closed at once). A socket file appears at bind(), a moment before
 * listen(): wait for this, not for the file.
 */
export function acceptsConnections(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
  });
}
