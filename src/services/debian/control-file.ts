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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const RELEASE_DATE = /^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) (UTC|GMT|Z|[+-]\d{4})$/;

/**
 * A Release file's `Date`/`Valid-Until` (RFC 2822 as Debian writes them,
 * e.g. `Sat, 09 Aug 2025 09:31:10 UTC`; apt also accepts GMT and numeric
 * zones). Undefined for anything else, including impossible dates: the
 * caller decides whether an unreadable date is fatal.
 */
export function parseReleaseDate(value: string): Date | undefined {
  const match = RELEASE_DATE.exec(value.trim());
  if (match === null) return undefined;
  const [, day = '', monthName = '', year = '', hour = '', minute = '', second = '', zone = ''] = match;
  const month = MONTHS.indexOf(monthName);
  if (month < 0) return undefined;
  const fields = [Number(year), month, Number(day), Number(hour), Number(minute), Number(second)] as const;
  const utc = Date.UTC(...fields);
  const back = new Date(utc);
  // Date.UTC rolls 31 Feb over into March; a real Release date never needs that.
  if (back.getUTCDate() !== fields[2] || back.getUTCMonth() !== month || fields[3] > 23 || fields[4] > 59 || fields[5] > 60) return undefined;
  const offsetMinutes = /^[+-]/.test(zone) ? (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5))) : 0;
  return new Date(utc - offsetMinutes * 60_000);
}
