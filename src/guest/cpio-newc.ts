/**
 * Writer for the cpio "newc" format the Linux kernel unpacks as an initramfs.
 * Each entry: a 110-byte ASCII header ("070701" + 13 eight-digit hex fields),
 * the NUL-terminated name padded to 4 bytes, then the data padded to 4 bytes;
 * the archive ends with an entry named TRAILER!!!.
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Buffer; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

interface HeaderFields {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  nameSize: number;
  rdevMajor: number;
  rdevMinor: number;
}

function header(fields: HeaderFields): Buffer {
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  return Buffer.from(
    '070701' +
      hex(fields.ino) +
      hex(fields.mode) +
      hex(0) + // uid: root
      hex(0) + // gid: root
      hex(fields.nlink) +
      hex(0) + // mtime: fixed, so the same inputs give the same bytes
      hex(fields.size) +
      hex(0) + // devmajor
      hex(0) + // devminor
      hex(fields.rdevMajor) +
      hex(fields.rdevMinor) +
      hex(fields.nameSize) +
      hex(0),
    'latin1',
  );
}

export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const chunks: Buffer[] = [];
  let ino = 1;
  const push = (name: string, mode: number, nlink: number, data: Buffer, rdev = { major: 0, minor: 0 }): void => {
    const nameBytes = Buffer.from(name + '\0', 'utf8');
    const head = header({ ino: ino++, mode, nlink, size: data.length, nameSize: nameBytes.length, rdevMajor: rdev.major, rdevMinor: rdev.minor });
    chunks.push(head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length));
  };
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, '');
    switch (entry.type) {
      case 'dir':
        push(name, S_IFDIR | (entry.mode ?? 0o755), 2, Buffer.alloc(0));
        break;
      case 'file':
        push(name, S_IFREG | (entry.mode ?? 0o644), 1, entry.data);
        break;
      case 'symlink':
        push(name, S_IFLNK | 0o777, 1, Buffer.from(entry.target, 'utf8'));
        break;
      case 'chardev':
        push(name, S_IFCHR | (entry.mode ?? 0o600), 1, Buffer.alloc(0), { major: entry.major, minor: entry.minor });
        break;
    }
  }
  push('TRAILER!!!', 0, 1, Buffer.alloc(0));
  return Buffer.concat(chunks);
}
