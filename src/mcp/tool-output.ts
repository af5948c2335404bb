import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

import { toBangerError } from '../rpc/errors.js';

/**
 * How tool results read to an agent: short text first (what happened, the
 * exit status), then the output, bounded so one chatty command cannot flood
 * the agent's context; errors carry banger's stable code and hint, and are
 * flagged `isError` so the agent knows the call failed rather than the
 * command.
 */

/** The most of one stream (stdout, stderr, a file, a patch) a tool result carries. */
export const MAX_OUTPUT_CHARS = 64 * 1024;
const HEAD_CHARS = 16 * 1024;

/**
 * `text` as a result carries it: whole when it fits, else its head and tail
 * (the end is where errors and summaries are) with a line saying what was
 * left out.
 */
export function bounded(text: string, max = MAX_OUTPUT_CHARS): string {
  if (text.length <= max) return text;
  const head = Math.min(HEAD_CHARS, Math.floor(max / 4));
  const tail = max - head;
  const omitted = text.length - head - tail;
  return `${text.slice(0, head)}\n[… ${omitted} characters left out …]\n${text.slice(text.length - tail)}`;
}

/** A successful result: `summary` and the sections that have content, plus the structured form. */
export function ok(summary: string, structured: Record<string, unknown>, sections: Record<string, string> = {}): CallToolResult {
  const parts = [summary];
  for (const [name, body] of Object.entries(sections)) if (body !== '') parts.push(`--- ${name} ---\n${bounded(body)}`);
  return { content: [{ type: 'text', text: parts.join('\n') }], structuredContent: structured };
}

/** A failed call: `error[CODE]: message` and the hint, flagged as an error. */
export function failed(thrown: unknown): CallToolResult {
  const error = toBangerError(thrown);
  const text = [`error[${error.code}]: ${error.message}`, ...(error.hint === undefined ? [] : [`hint: ${error.hint}`])].join('\n');
  return {
    isError: true,
    content: [{ type: 'text', text }],
    structuredContent: { error: { code: error.code, message: error.message, hint: error.hint ?? null } },
  };
}
