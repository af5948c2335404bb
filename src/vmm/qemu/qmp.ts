import { connect } from 'node:net';

import { BangerError } from '../../rpc/errors.js';

/**
 * Minimal QMP client: connect, negotiate capabilities, run one command,
 * disconnect. QMP speaks JSON objects separated by newlines; the server
 * greets first, and asynchronous events may arrive between replies.
 */
export function qmpCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffer = '';
    let step: 'greeting' | 'capabilities' | 'command' = 'greeting';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new BangerError('ERR_VMM_FAILED', `QMP ${command} timed out`));
    }, timeoutMs);
    const finish = (error: Error | undefined, value?: unknown): void => {
      clearTimeout(timer);
      socket.end();
      if (error !== undefined) reject(error);
      else resolve(value);
    };
    socket.on('error', (error) => {
      finish(new BangerError('ERR_VMM_FAILED', `QMP socket ${socketPath}: ${error.message}`, { cause: error }));
    });
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line === '') continue;
        const message = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc?: string }; event?: string };
        if (message.event !== undefined) continue;
        if (step === 'greeting' && message.QMP !== undefined) {
          step = 'capabilities';
          socket.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
        } else if (message.error !== undefined) {
          finish(new BangerError('ERR_VMM_FAILED', `QMP ${command}: ${message.error.desc ?? 'error'}`));
        } else if (step === 'capabilities') {
          step = 'command';
          socket.write(JSON.stringify({ execute: command }) + '\n');
        } else {
          finish(undefined, message.return);
        }
      }
    });
  });
}
