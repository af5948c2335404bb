import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * Test support, imported only by tests: a throwaway signing key made with the
 * host's gpg, and a Debian-style archive served over HTTP on 127.0.0.1. With
 * them tests run the real trust chain (gpgv, a keyring, the hashes a signed
 * index lists) against real signed, tampered and mismatching data.
 */

export interface TestKey {
  /** A keyring holding only this key's public half, for `gpgv --keyring`. */
  keyring: string;
  /** `text` clearsigned, as Debian signs an InRelease. */
  clearsign: (text: string) => Buffer;
  /** Stops the gpg-agent that signing started for this key's home. */
  dispose: () => void;
}

export function makeTestKey(dir: string): TestKey {
  const home = join(dir, 'gnupg');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const gpg = (args: string[], input?: string): Buffer =>
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
      ...(input === undefined ? {} : { input }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  gpg(['--quick-gen-key', 'banger test archive <test@banger.invalid>', 'ed25519', 'sign', 'never']);
  const keyring = join(dir, 'test-archive-keyring.gpg');
  writeFileSync(keyring, gpg(['--export']));
  return {
    keyring,
    clearsign: (text) => gpg(['--clearsign'], text),
    dispose: () => {
      execFileSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], { stdio: 'ignore' });
    },
  };
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function xz(text: string): Buffer {
  return execFileSync('xz', ['-c'], { input: text });
}

/** A Release file listing `files` (path within the suite -> content) with their sha256 and size. */
export function releaseText(suite: string, files: Record<string, Buffer>, fields: Record<string, string> = {}): string {
  const head = { Origin: 'Debian', Label: 'Debian', Suite: suite, Codename: suite, Date: 'Sat, 09 Aug 2025 09:31:10 UTC', ...fields };
  const lines = Object.entries(head).map(([name, value]) => `${name}: ${value}`);
  lines.push('SHA256:', ...Object.entries(files).map(([path, data]) => ` ${sha256(data)} ${String(data.length).padStart(9)} ${path}`));
  return `${lines.join('\n')}\n`;
}

/** One stanza of a Packages index for a file whose content is `deb`. */
export function packageStanza(name: string, version: string, filename: string, deb: Buffer, depends?: string): string {
  return [
    `Package: ${name}`,
    `Version: ${version}`,
    'Architecture: amd64',
    ...(depends === undefined ? [] : [`Depends: ${depends}`]),
    `Filename: ${filename}`,
    `Size: ${deb.length}`,
    `SHA256: ${sha256(deb)}`,
    '',
  ].join('\n');
}

export interface TestMirror {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** What the mirror serves, by request path; a function answers the request itself; anything else is a 404. */
  files: Map<string, Buffer | RequestListener>;
  /** Paths requested so far, in order. */
  requests: string[];
  close: () => void;
}

export async function serveMirror(): Promise<TestMirror> {
  const files = new Map<string, Buffer | RequestListener>();
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    const file = files.get(path);
    if (typeof file === 'function') {
      file(req, res);
    } else if (file === undefined) {
      res.statusCode = 404;
      res.end();
    } else {
      res.end(file);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    files,
    requests,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * Publishes a signed suite at `<base>/dists/<suite>/`: `main/binary-amd64/Packages.xz`
 * holding `stanzas`, and an InRelease listing it, signed with `key`. `base`
 * is a path on the mirror, e.g. `/debian`.
 */
export function publishSuite(mirror: TestMirror, key: TestKey, base: string, suite: string, stanzas: string[], fields: Record<string, string> = {}): void {
  const packages = xz(stanzas.join('\n'));
  const index = 'main/binary-amd64/Packages.xz';
  mirror.files.set(`${base}/dists/${suite}/${index}`, packages);
  mirror.files.set(`${base}/dists/${suite}/InRelease`, key.clearsign(releaseText(suite, { [index]: packages }, fields)));
}
