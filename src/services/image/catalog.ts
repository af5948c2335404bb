/**
 * Images banger can build. An entry is a recipe: a Debian suite and the
 * packages to install on top of minbase, plus the catalog kernel it boots
 * with. Builds run on the host (mmdebstrap), not in a VM.
 */
export interface ImageCatalogEntry {
  name: string;
  description: string;
  suite: string;
  packages: readonly string[];
  kernel: string;
}

export const IMAGE_CATALOG: readonly ImageCatalogEntry[] = [
  {
    name: 'debian-bookworm',
    description: 'Debian 12 minbase with systemd, openssh-server, git, curl, ca-certificates, iproute2',
    suite: 'bookworm',
    packages: ['systemd-sysv', 'openssh-server', 'git', 'ca-certificates', 'curl', 'iproute2'],
    kernel: 'debian-bookworm-cloud',
  },
];

export function findCatalogImage(name: string): ImageCatalogEntry | undefined {
  return IMAGE_CATALOG.find((entry) => entry.name === name);
}
