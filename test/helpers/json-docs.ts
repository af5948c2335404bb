import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * docs/json.md read as data: one section per command (`### \`banger vm list\``)
 * with either `Shape: \`…\`` or `Stream: …` on its first line. The tests hold
 * the document and the CLI together with it.
 */
export interface JsonDocSection {
  /** The command path after `banger`, e.g. `vm list`. */
  command: string;
  /** The documented shape (the text inside the backticks), or undefined for a streaming command. */
  shape: string | undefined;
}

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function readJsonDocs(): JsonDocSection[] {
  const text = readFileSync(join(REPO_ROOT, 'docs', 'json.md'), 'utf8');
  const sections: JsonDocSection[] = [];
  const lines = text.split('\n');
  for (const [index, line] of lines.entries()) {
    const heading = /^### `banger ([a-z -]+)`$/.exec(line);
    if (heading?.[1] === undefined) continue;
    const body = lines[index + 1] ?? '';
    const shape = /^Shape: `([^`]+)`/.exec(body)?.[1];
    if (shape === undefined && !body.startsWith('Stream: '))
      throw new Error(`docs/json.md: the section of banger ${heading[1]} starts with neither "Shape:" nor "Stream:"`);
    sections.push({ command: heading[1], shape });
  }
  return sections;
}

/**
 * The top-level keys of an object shape like `{ running: boolean, pid?: number, ...PingResult }`:
 * required and optional names, and whether it spreads a type (so more keys are allowed).
 * Undefined for a shape that is a bare type name (`VmInfo`).
 */
export function shapeKeys(shape: string): { required: string[]; optional: string[]; open: boolean } | undefined {
  const trimmed = shape.trim();
  if (!trimmed.startsWith('{')) return undefined;
  let depth = 0;
  let end = -1;
  for (let i = 0; i < trimmed.length; i++) {
    const ch = trimmed.charAt(i);
    if ('{[('.includes(ch)) depth++;
    else if ('}])'.includes(ch)) depth--;
    if (depth === 0) {
      end = i;
      break;
    }
  }
  const inner = trimmed.slice(1, end);
  const parts: string[] = [];
  let current = '';
  depth = 0;
  for (const ch of inner) {
    if ('{[(<'.includes(ch)) depth++;
    else if ('}])>'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  const result = { required: [] as string[], optional: [] as string[], open: false };
  for (const part of parts.map((p) => p.trim()).filter((p) => p !== '')) {
    if (part.startsWith('...')) {
      result.open = true;
      continue;
    }
    const name = /^([A-Za-z_][A-Za-z0-9_]*)(\?)?(:|$)/.exec(part);
    if (name?.[1] === undefined) throw new Error(`cannot read the key of "${part}" in ${shape}`);
    (name[2] === '?' ? result.optional : result.required).push(name[1]);
  }
  return result;
}
