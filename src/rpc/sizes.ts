/**
 * Sizes as people write them: "512M", "8G", "1GiB", "2gb" (binary units, a
 * whole number before the unit). Used for --memory/--disk-size and for sizes
 * in config.toml; see ./schemas.ts for the limits.
 */

const UNITS: Record<string, number> = {
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

const SIZE_PATTERN = /^([0-9]{1,16})\s*([KMGT])(?:i?B)?$/i;

/** Bytes for a size string; undefined when malformed, zero, or beyond what a double holds exactly. */
export function parseSizeOrUndefined(text: string): number | undefined {
  const match = SIZE_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const [, digits = '', unit = ''] = match;
  const bytes = Number(digits) * (UNITS[unit.toUpperCase()] ?? 0);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** The largest whole unit that divides the size: 8 GiB -> "8G", 1536 MiB -> "1536M". */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    const size = UNITS[unit] ?? 1;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
