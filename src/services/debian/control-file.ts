/**
 * Parser for Debian control-file syntax (deb822): stanzas separated by blank
 * lines, `Field: value` lines, continuation lines starting with a space.
 * Used for Release/InRelease and Packages indexes.
 */
export type Stanza = Map<string, string>;

export function parseStanzas(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  let current: Stanza = new Map();
  let lastField: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current.size > 0) stanzas.push(current);
      current = new Map();
      lastField = undefined;
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && lastField !== undefined) {
      current.set(lastField, `${current.get(lastField) ?? ''}\n${line.slice(1)}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    lastField = line.slice(0, colon);
    current.set(lastField, line.slice(colon + 1).trim());
  }
  if (current.size > 0) stanzas.push(current);
  return stanzas;
}

export interface IndexFile {
  sha256: string;
  size: number;
  path: string;
}

/** The `SHA256:` file list of a Release file. */
export function releaseFiles(release: Stanza): IndexFile[] {
  return (release.get('SHA256') ?? '')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((parts) => parts.length === 3)
    .map(([sha256 = '', size = '0', path = '']) => ({ sha256, size: Number(size), path }));
}
