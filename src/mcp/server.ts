import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';

import { buildInfo } from '../build-info.js';
import type { ConnectOptions } from '../sdk/index.js';
import { toolContext } from './tool-context.js';
import { registerTools } from './tools.js';

const INSTRUCTIONS = `banger gives you sandboxes: throwaway Linux microVMs on this machine, each with its own kernel and disk.
Typical use: sandbox_create with repo_path (the repo is copied to /root/repo), sandbox_exec to build and test there,
sandbox_read_file / sandbox_write_file to edit, sandbox_export_patch to get your edits back as a git patch, sandbox_delete when done.
sandbox_run does create + one command + patch + delete in one call. Sandboxes reach only the host unless created with nat: true.`;

/** The MCP server for banger's tools, not yet connected to a transport. */
export function createMcpServer(options: ConnectOptions = {}): { server: McpServer; close: () => void } {
  const server = new McpServer({ name: 'banger', version: buildInfo().version }, { instructions: INSTRUCTIONS, capabilities: { tools: {} } });
  const context = toolContext(options);
  registerTools(server, context);
  return { server, close: context.close };
}

/**
 * `banger mcp`: serves MCP over stdin/stdout until the client closes stdin.
 * Nothing else may write to stdout (it carries the protocol); notices go to
 * stderr, which agent clients log.
 */
export async function runMcpServer(): Promise<void> {
  const { server, close } = createMcpServer({ onNotice: (message) => process.stderr.write(`banger mcp: ${message}\n`) });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => {
      resolve();
    };
    process.stdin.once('end', () => {
      resolve();
    });
  });
  await server.connect(transport);
  await closed;
  close();
  await server.close();
}
