import type { ArchiveSource } from '../debian/archive.js';

/**
 * Kernels banger knows how to fetch. An entry names a Debian metapackage that
 * always depends on the current build (linux-image-cloud-amd64 ->
 * linux-image-6.1.0-NN-cloud-amd64), looked up in each listed suite; the
 * newest version wins, which is usually the security suite's. Or it is a
 * kernel bundle to download (a `.tar.zst` made by `kernel export`, sha256
 * pinned; see kernel-bundle.ts).
 */
export interface KernelCatalogEntry {
  name: string;
  description: string;
  metaPackage: string;
  /** Suites to search, given the configured Debian mirror. */
  sources: (mirror: string) => ArchiveSource[];
  /** When set, the kernel is downloaded as this bundle instead of resolved in Debian's archive. */
  bundle?: { url: string; sha256: string } | undefined;
}

export const KERNEL_CATALOG: readonly KernelCatalogEntry[] = [
  {
    name: 'debian-bookworm-cloud',
    description: "Debian 12's cloud kernel (6.1 LTS, virtio drivers as modules)",
    metaPackage: 'linux-image-cloud-amd64',
    sources: (mirror) => [
      { base: mirror, suite: 'bookworm', component: 'main' },
      { base: `${mirror}-security`, suite: 'bookworm-security', component: 'main' },
    ],
  },
];

export function findCatalogKernel(name: string): KernelCatalogEntry | undefined {
  return KERNEL_CATALOG.find((entry) => entry.name === name);
}
