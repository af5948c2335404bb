import { BangerError } from '../../rpc/errors.js';

/**
 * Reader for `ar` archives, the container of Debian .deb packages
 * (debian-binary, control.tar.*, data.tar.*). Members are returned as views
 * into the archive buffer.
 */

export interface ArMember {
  name: string;
  data: Buffer;
}

const GLOBAL_HEADER = '!<arch>\n';
const MEMBER_HEADER_SIZE = 60;

export function readArArchive(archive: Buffer): ArMember[] {
  if (archive.toString('latin1', 0, 8) !== GLOBAL_HEADER) {
    throw new BangerError('ERR_INVALID_ARGUMENT', 'not an ar archive (a .deb starts with "!<arch>")');
  }
  const members: ArMember[] = [];
  let offset = 8;
  while (offset + MEMBER_HEADER_SIZE <= archive.length) {
    const header = archive.toString('latin1', offset, offset + MEMBER_HEADER_SIZE);
    if (header.slice(58, 60) !== '`\n') throw new BangerError('ERR_INVALID_ARGUMENT', `corrupt ar member header at byte ${offset}`);
    const name = header.slice(0, 16).trim().replace(/\/$/, '');
    const size = Number.parseInt(header.slice(48, 58).trim(), 10);
    const start = offset + MEMBER_HEADER_SIZE;
    if (!Number.isSafeInteger(size) || start + size > archive.length) {
      throw new BangerError('ERR_INVALID_ARGUMENT', `ar member "${name}" runs past the end of the archive`);
    }
    members.push({ name, data: archive.subarray(start, start + size) });
    offset = start + size + (size % 2); // members are 2-byte aligned
  }
  return members;
}
