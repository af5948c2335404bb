/**
 * Images banger can pull by name. An entry is either a recipe (a Debian
 * suite and the packages to install on top of minbase, built on the host by
 * mmdebstrap, not in a VM) or a bundle to download (a `.tar.zst` of
 * rootfs.ext4 + manifest.json, sha256 pinned), plus the catalog kernel it
 * boots with.
 */
export interface ImageCatalogEntry {
  name: string;
  description: string;
  suite: string;
  packages: readonly string[];
  kernel: string;
  /** Tools installed from outside Debian's archive, each pinned (see MiseRelease). */
  mise?: MiseRelease | undefined;
  /** When set, the image is downloaded as this bundle instead of built from the recipe. */
  bundle?: { url: string; sha256: string } | undefined;
}

/**
 * mise, from the npm registry (`@jdxcode/mise-linux-x64`, the binary the mise
 * project publishes there): the tarball and its npm integrity (sha512).
 */
export interface MiseRelease {
  version: string;
  tarball: string;
  /** npm's `dist.integrity`: `sha512-<base64>`. */
  integrity: string;
}

export const MISE_RELEASE: MiseRelease = {
  version: '2026.9.15',
  tarball: 'https://registry.npmjs.org/@jdxcode/mise-linux-x64/-/mise-linux-x64-2026.9.15.tgz',
  integrity: 'sha512-ButPFGyztN0Rk/HOHvHuf+W80CkvQRAjbDWHvhGJc3PnL3e2KhCYZIOyjx8wPkhr9VJa/7sJZXpxtt5JLjsfaQ==',
};

const BASE_PACKAGES = ['systemd-sysv', 'openssh-server', 'git', 'ca-certificates', 'curl', 'iproute2'];

export const IMAGE_CATALOG: readonly ImageCatalogEntry[] = [
  {
    name: 'debian-bookworm',
    description: 'Debian 12 minbase with systemd, openssh-server, git, curl, ca-certificates, iproute2',
    suite: 'bookworm',
    packages: BASE_PACKAGES,
    kernel: 'debian-bookworm-cloud',
  },
  {
    name: 'debian-bookworm-dev',
    description: 'debian-bookworm plus build-essential, python3, nodejs, docker.io and mise',
    suite: 'bookworm',
    packages: [...BASE_PACKAGES, 'build-essential', 'python3', 'nodejs', 'docker.io'],
    kernel: 'debian-bookworm-cloud',
    mise: MISE_RELEASE,
  },
];

export function findCatalogImage(name: string): ImageCatalogEntry | undefined {
  return IMAGE_CATALOG.find((entry) => entry.name === name);
}
