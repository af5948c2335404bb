import { BangerError } from '../rpc/errors.js';

const UNITS: Record<string, number> = {
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

const SIZE_PATTERN = /^(\d+)\s*([KMGT])(?:i?B)?$/i;

/** Parses "512M", "8G", "1GiB", "2gb" (binary units) into bytes; undefined when malformed. */
export function parseSizeOrUndefined(text: string): number | undefined {
  const match = SIZE_PATTERN.exec(text.trim());
  if (match === null) return undefined;
  const [, digits = '', unit = ''] = match;
  const bytes = Number(digits) * (UNITS[unit.toUpperCase()] ?? 0);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** Like parseSizeOrUndefined, but a malformed size is an ERR_INVALID_ARGUMENT. */
export function parseSize(text: string): number {
  const bytes = parseSizeOrUndefined(text);
  if (bytes === undefined) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `invalid size "${text}"`, { hint: 'use a number with a unit: 512M, 8G, 1T' });
  }
  return bytes;
}

/** The largest whole unit that divides the size: 8 GiB -> "8G", 1536 MiB -> "1536M". */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    const size = UNITS[unit] ?? 1;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
