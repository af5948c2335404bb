import { Command } from '@commander-js/extra-typings';

/**
 * `banger mcp`: the Model Context Protocol server for agents, on stdio. The
 * server (and @modelcontextprotocol/sdk with it) is loaded only when this
 * command runs, so no other command pays for it.
 */
export function mcpCommand(): Command {
  return new Command('mcp')
    .description('Serve banger to an AI agent over the Model Context Protocol (stdio): sandboxes, commands, files, patches')
    .addHelpText(
      'after',
      `
Run by an agent client, not by hand: it reads MCP messages on stdin and writes
them on stdout until stdin closes. Tools: sandbox_create, sandbox_run,
sandbox_exec, sandbox_read_file, sandbox_write_file, sandbox_export_patch,
sandbox_list, sandbox_start, sandbox_stop, sandbox_delete.

Example client config (Claude Code, Cursor, …: see docs/mcp.md):
  { "mcpServers": { "banger": { "command": "banger", "args": ["mcp"] } } }`,
    )
    .action(async () => {
      const { runMcpServer } = await import('../../mcp/server.js');
      await runMcpServer();
    });
}
