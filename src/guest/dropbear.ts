import { readFileSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';

import { findExecutable, elfInterpreter } from '../host/executables.js';
import { runCommand } from '../host/command.js';
import { BangerError } from '../rpc/errors.js';

/**
 * banger's own SSH server for images that bring none (anything pulled from a
 * registry: a busybox rootfs, Alpine, distroless-style, node:22…): the host's
 * dropbear (Debian's dropbear-bin) with the shared libraries it links and
 * the host's dynamic loader, all under /banger/ssh in the image. It runs as
 * `/banger/ssh/ld.so --library-path /banger/ssh/lib /banger/ssh/dropbear`,
 * so it never uses the image's own libc (musl or none at all); the commands
 * it starts are the image's own programs with the image's own libraries.
 * dropbear takes the VM's host key in its own format, converted from the
 * OpenSSH key banger generates and pins (dropbearHostKey).
 */

/** Where the bundle lives inside an image. */
export const BANGER_SSH_DIR = '/banger/ssh';
/** The VM's host key in dropbear's format, on its upper disk. */
export const DROPBEAR_HOST_KEY = '/banger/dropbear_host_key';

export interface BundleFile {
  /** Path inside the image. */
  path: string;
  content: Buffer;
  mode: number;
}

/**
 * dropbear's argv[0]: a name that resolves to no file. dropbear re-executes
 * itself through its argv[0] for each connection when it can; run that way,
 * the program would start without the bundled loader and libraries (found by
 * the image's own loader, if it has one, and failing on the missing
 * libtomcrypt: seen with a Debian image). With nothing to re-execute it
 * serves each connection from a fork, as it does when built without re-exec.
 */
export const DROPBEAR_ARGV0 = 'banger-dropbear';

/** busybox init's table for an image served by banger's dropbear (see MINIMAL_INITTAB for the image's sshd). */
export const DROPBEAR_INITTAB = [
  `::respawn:${BANGER_SSH_DIR}/ld.so --library-path ${BANGER_SSH_DIR}/lib --argv0 ${DROPBEAR_ARGV0} ${BANGER_SSH_DIR}/dropbear -F -E -s -r ${DROPBEAR_HOST_KEY} -p 22`,
  '::ctrlaltdel:/banger/busybox poweroff',
  '::shutdown:/banger/busybox sync',
  '',
].join('\n');

/**
 * The files of the bundle, read from the host: dropbear, the loader and
 * every library `ld.so --list` names. ERR_HOST_TOOL_MISSING when dropbear is
 * not installed.
 */
export async function dropbearBundle(env: NodeJS.ProcessEnv = process.env): Promise<BundleFile[]> {
  const dropbear = findExecutable('dropbear', env);
  if (dropbear === undefined) {
    throw new BangerError('ERR_HOST_TOOL_MISSING', "images from registries need dropbear (banger's SSH server for them), not found on this host", {
      hint: 'sudo apt-get install dropbear-bin (only the program: no service is installed or started)',
    });
  }
  const loader = elfInterpreter(dropbear);
  if (loader === undefined) throw new BangerError('ERR_HOST_TOOL_MISSING', `${dropbear} is not a dynamically linked x86_64 program`);
  const libraries: string[] = [];
  await runCommand(loader, ['--list', dropbear], {
    onLine: (line) => {
      const match = /=>\s+(\/\S+)/.exec(line);
      if (match?.[1] !== undefined) libraries.push(match[1]);
    },
  });
  return [
    { path: `${BANGER_SSH_DIR}/dropbear`, content: readFileSync(dropbear), mode: 0o755 },
    { path: `${BANGER_SSH_DIR}/ld.so`, content: readFileSync(realpathSync(loader)), mode: 0o755 },
    ...libraries.map((library) => ({ path: `${BANGER_SSH_DIR}/lib/${basename(library)}`, content: readFileSync(realpathSync(library)), mode: 0o644 })),
  ];
}

/**
 * Converts an unencrypted OpenSSH ed25519 private key (`openssh-key-v1`, as
 * ssh-keygen writes it) to dropbear's key format: the string `ssh-ed25519`
 * and a 64-byte string of the seed followed by the public key.
 */
export function dropbearHostKey(opensshPrivateKey: string): Buffer {
  const body = opensshPrivateKey.replace(/-----(BEGIN|END) OPENSSH PRIVATE KEY-----/g, '').replace(/\s+/g, '');
  const blob = Buffer.from(body, 'base64');
  const magic = 'openssh-key-v1\0';
  if (blob.subarray(0, magic.length).toString('latin1') !== magic) throw new Error('not an openssh-key-v1 private key');
  const reader = new SshReader(blob, magic.length);
  if (reader.string().toString() !== 'none') throw new Error('the host key is encrypted');
  reader.string(); // kdf name
  reader.string(); // kdf options
  if (reader.uint32() !== 1) throw new Error('expected exactly one key');
  reader.string(); // public key blob
  const secret = new SshReader(reader.string(), 0);
  if (secret.uint32() !== secret.uint32()) throw new Error('the private key section is corrupt');
  if (secret.string().toString() !== 'ssh-ed25519') throw new Error('not an ed25519 key');
  secret.string(); // public key
  const seedAndPublic = secret.string();
  if (seedAndPublic.length !== 64) throw new Error('unexpected ed25519 private key length');
  return Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(seedAndPublic)]);
}

function sshString(data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

class SshReader {
  readonly #data: Buffer;
  #at: number;

  constructor(data: Buffer, at: number) {
    this.#data = data;
    this.#at = at;
  }

  uint32(): number {
    if (this.#at + 4 > this.#data.length) throw new Error('truncated key');
    const value = this.#data.readUInt32BE(this.#at);
    this.#at += 4;
    return value;
  }

  string(): Buffer {
    const length = this.uint32();
    if (this.#at + length > this.#data.length) throw new Error('truncated key');
    const value = this.#data.subarray(this.#at, this.#at + length);
    this.#at += length;
    return value;
  }
}
