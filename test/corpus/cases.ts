import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { isErrorCode, type ErrorCode } from '../../src/rpc/errors.js';
import { REPO_ROOT } from '../integration/harness.js';
import { frame, request, type Then } from './raw-rpc.js';

/**
 * The corpus's case files (test/corpus/cases/*.json): each holds one
 * category of bad input, all of one kind, and says what every case must
 * produce. See docs/testing.md.
 */

/** A defect the corpus found in code this corpus does not own: what happens today, and where the fix goes. */
export interface KnownDefect<T> {
  observed: T;
  fix: string;
}

/** `banger <argv> --json` must fail with `code` (exit 2 for ERR_USAGE, else 1), its message containing `message` if given. */
export interface CliCase {
  id: string;
  /** Arguments; each may be a generator (see expand). */
  argv: unknown[];
  code: ErrorCode;
  message?: string;
  defect?: KnownDefect<{ code: string; longMessage?: true }>;
}

/** What the daemon answers to a raw RPC case; `longMessage` marks an error message that echoes input at length. */
export type RpcExpect = ({ code: ErrorCode } | { rpcCode: number } | { noReply: true }) & { longMessage?: true };

/**
 * One thing to send: a request (framed, with an id; method and params may use
 * generators), a JSON value framed as a body, a body of text pieces (for JSON
 * too deep to build as a value), or raw bytes.
 */
export type RpcSend =
  | { request: { method: unknown; params?: unknown } }
  | { json: unknown }
  | { body: unknown[] }
  | { raw: string; encoding?: 'utf8' | 'latin1' };

export interface RpcCase {
  id: string;
  send: RpcSend[];
  then?: Then;
  expect: RpcExpect;
  /** Text the error message must contain (when the case has no defect). */
  message?: string;
  defect?: KnownDefect<RpcExpect>;
}

/** config.toml `toml` (or, with `directory`, a directory where the file should be) must stop the daemon with `code`, naming `key`. */
export interface ConfigCase {
  id: string;
  /** The file's text, or pieces of it to concatenate (each may be a generator). */
  toml?: string | unknown[];
  directory?: true;
  code: ErrorCode;
  key?: string;
}

export type CaseFile =
  | { category: string; kind: 'cli'; about: string; cases: CliCase[] }
  | { category: string; kind: 'rpc'; about: string; cases: RpcCase[] }
  | { category: string; kind: 'config'; about: string; cases: ConfigCase[] };

export const CASES_DIR = join(REPO_ROOT, 'test', 'corpus', 'cases');

export function loadCases(): CaseFile[] {
  return readdirSync(CASES_DIR)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => {
      const file = JSON.parse(readFileSync(join(CASES_DIR, name), 'utf8')) as Omit<CaseFile, 'category'>;
      const loaded = { ...file, category: name.replace(/\.json$/, '') } as CaseFile;
      checkFile(loaded);
      return loaded;
    });
}

/** Catches typos in the case files themselves: an unknown code would make a case unpassable in a confusing way. */
function checkFile(file: CaseFile): void {
  const ids = new Set<string>();
  for (const c of file.cases) {
    if (ids.has(c.id)) throw new Error(`${file.category}: duplicate case id ${c.id}`);
    ids.add(c.id);
    // The files are untyped JSON: read the codes wherever a case may state one.
    const loose = c as { code?: string; expect?: { code?: string }; defect?: { observed: { code?: string } } };
    const codes = [loose.code, loose.expect?.code, loose.defect?.observed.code];
    for (const code of codes) if (code !== undefined && !isErrorCode(code)) throw new Error(`${file.category}/${c.id}: unknown error code ${code}`);
  }
}

/** Expands the generator a case file may use where a literal would be unwieldy: `{"$repeat": "a", "times": 10485760}` is a string of 10 MB. */
export function expand(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(expand);
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  if (typeof record.$repeat === 'string' && typeof record.times === 'number') return record.$repeat.repeat(record.times);
  return Object.fromEntries(Object.entries(record).map(([key, inner]) => [key, expand(inner)]));
}

/** The bytes of a case's sends; requests are numbered from 1. */
export function bytesOf(sends: readonly RpcSend[]): Buffer[] {
  let id = 0;
  return sends.map((send) => {
    if ('request' in send) return request(++id, String(expand(send.request.method)), expand(send.request.params));
    if ('json' in send) return frame(JSON.stringify(expand(send.json)));
    if ('body' in send) return frame(send.body.map((piece) => String(expand(piece))).join(''));
    return Buffer.from(send.raw, send.encoding ?? 'utf8');
  });
}
