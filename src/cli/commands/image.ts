import { resolve } from 'node:path';

import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

import type { BundleFileInfo, ImageInfo } from '../../rpc/methods.js';
import { BUNDLE_SUFFIX, isUrlLike } from '../../rpc/schemas.js';
import { createContext } from '../context.js';
import { formatBytes, table } from '../render/text.js';

export function imageCommand(): CommandUnknownOpts {
  const image = new Command('image').description('Manage VM images (read-only root filesystems shared by VMs)').addHelpText(
    'after',
    `
An image is a read-only ext4 root plus the kernel it boots with. Every VM gets
its own copy-on-write layer on top, so the image itself never changes.
Catalog images are built on this host from Debian's archive; \`vm create\` pulls
the one it needs automatically. \`image export\` writes an image as a bundle
(a .tar.zst) that \`image pull\` takes back on another host.`,
  );

  image
    .command('list')
    .alias('ls')
    .description('List images on this host')
    .action(async (_options, command) => {
      const cli = createContext(command);
      const result = await cli.call('imageList', {});
      cli.out.result(result, ({ images }) =>
        images.length === 0
          ? 'no images yet (`banger image catalog` lists what can be pulled)'
          : table([
              ['NAME', 'ID', 'SOURCE', 'DIGEST', 'KERNEL', 'SIZE', 'MANAGED'],
              ...images.map((i) => [
                i.name,
                i.id,
                i.ref ?? i.source,
                i.digest === null ? '-' : i.digest.slice(0, 19),
                i.kernel.name,
                formatBytes(i.sizeBytes),
                i.managed ? 'yes' : 'no',
              ]),
            ]),
      );
    });

  image
    .command('catalog')
    .description('List the images banger can pull')
    .action(async (_options, command) => {
      const cli = createContext(command);
      const result = await cli.call('imageCatalog', {});
      cli.out.result(result, ({ entries }) =>
        table([['NAME', 'KERNEL', 'PULLED', 'DESCRIPTION'], ...entries.map((e) => [e.name, e.kernel, e.pulled ? 'yes' : 'no', e.description])]),
      );
    });

  image
    .command('show')
    .description('Show one image (by name, id, or a unique prefix of either)')
    .argument('<image>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      cli.out.result(await cli.call('imageShow', { ref }), renderImage);
    });

  image
    .command('pull')
    .description('Pull an image: build or download a catalog image, fetch one from an OCI registry, or take a bundle')
    .argument('<source>', 'catalog name (see `banger image catalog`), an image here (re-checked), a registry reference, or a .tar.zst bundle (path or URL)')
    .option('--name <name>', 'name for a registry image (default: from the reference, e.g. node-22) or a bundle (default: its manifest)')
    .option('--kernel <kernel>', "kernel to boot a registry image or bundle with (default: the catalog's Debian kernel; a bundle's own kernel)")
    .option('--sha256 <hex>', 'sha256 the bundle must have (required for a URL; checked for a file when given)')
    .addHelpText(
      'after',
      `
Registry references are written as for docker pull:
  banger image pull debian:bookworm                  # Docker Hub
  banger image pull localhost:5000/team/dev:1        # plain HTTP only for loopback or [registries] insecure
  banger image pull ghcr.io/org/img@sha256:<digest>  # pinned
Credentials come from ~/.docker/config.json (docker login, credential helpers).
Layers are verified, cached by digest (a shared base is downloaded once) and
flattened into an ext4 root without root privileges; banger adds its own SSH
server, so an image needs no sshd, only /bin/sh. Pulling a name again only
asks the registry for the manifest and does nothing when it is unchanged.

Bundles (${BUNDLE_SUFFIX}, written by \`banger image export\`) hold an ext4 root and
a manifest naming the image and its kernel:
  banger image pull ./dev.tar.zst                             # a file (a path ending in ${BUNDLE_SUFFIX})
  banger image pull https://host/dev.tar.zst --sha256 <hex>    # a URL: its sha256 is required
  banger image pull /srv/dev.tar.zst --name dev2 --kernel my-kernel
The image is named as the manifest says unless --name; it boots with --kernel,
else the kernel the catalog entry or the manifest names (a catalog kernel is
pulled when missing).
A bundle's content is checked, not trusted: only a regular rootfs.ext4 and
manifest.json are accepted, and nothing is kept of one that is refused.`,
    )
    .action(async (source, options, command) => {
      const cli = createContext(command);
      const result = await cli.callWithProgress('imagePull', {
        source: bundleArgument(source),
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
        ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }),
      });
      cli.out.result(result, (r) =>
        r.pulled
          ? `pulled image ${r.image.name} (${r.image.id})${r.image.digest === null ? '' : ` ${r.image.digest}`}`
          : `image ${r.image.name} is up to date (${r.image.id})`,
      );
    });

  image
    .command('export')
    .description('Write an image as a bundle (a .tar.zst of its rootfs and a manifest) that `image pull` takes back')
    .argument('<image>', 'name or id')
    .argument('<file>', `bundle to write (ending in ${BUNDLE_SUFFIX})`)
    .option('--force', 'replace the file if it exists')
    .addHelpText(
      'after',
      `
The bundle names the image's kernel; pull it elsewhere with the sha256 printed here:
  banger image export dev dev.tar.zst
  banger image pull https://host/dev.tar.zst --sha256 <hex>   # on the other host
The file is written by the daemon (as you), all at once: a failed or
cancelled export leaves nothing.`,
    )
    .action(async (ref, file, options, command) => {
      const cli = createContext(command);
      const result = await cli.callWithProgress('imageExport', { ref, path: resolve(file), ...(options.force === true ? { force: true } : {}) });
      cli.out.result(result, (r) => renderExported(`image ${r.image}`, r));
    });

  image
    .command('register')
    .description('Register an ext4 root filesystem image where it lies')
    .argument('<name>', 'name for the new image')
    .requiredOption('--rootfs <path>', 'ext4 image of a root filesystem with sshd (it must stay at this path until promoted)')
    .requiredOption('--kernel <kernel>', 'kernel to boot it with (name or id)')
    .action(async (name, options, command) => {
      const cli = createContext(command);
      const info = await cli.call('imageRegister', { name, rootfs: resolve(options.rootfs), kernel: options.kernel });
      cli.out.result(info, (i) => `registered image ${i.name} (${i.id}) at ${i.rootfs}`);
    });

  image
    .command('promote')
    .description("Copy a registered image's rootfs into banger's store, so the original may be moved or deleted")
    .argument('<image>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      const info = await cli.callWithProgress('imagePromote', { ref });
      cli.out.result(info, (i) => `promoted image ${i.name}: now at ${i.rootfs}`);
    });

  image
    .command('delete')
    .alias('rm')
    .description('Delete an image (refused while a VM uses it; a registered file is left alone)')
    .argument('<image>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      const info = await cli.call('imageDelete', { ref });
      cli.out.result(info, (i) => `deleted image ${i.name} (${i.id})`);
    });

  return image;
}

/**
 * A pull's source as the daemon needs it: a bundle file named by a relative
 * path (anything ending in .tar.zst that is not a URL) is made absolute,
 * since the daemon has no working directory of the user's; everything else
 * goes as typed.
 */
export function bundleArgument(source: string): string {
  return source.endsWith(BUNDLE_SUFFIX) && !isUrlLike(source) ? resolve(source) : source;
}

/** What an export prints: where, how big, and a sha256sum line (`sha256sum -c` reads it). */
export function renderExported(what: string, r: BundleFileInfo): string {
  return `exported ${what} to ${r.path} (${formatBytes(r.sizeBytes)})\n${r.sha256}  ${r.path}`;
}

function renderImage(i: ImageInfo): string {
  return [
    `name:     ${i.name}`,
    `id:       ${i.id}`,
    `source:   ${i.source}`,
    ...(i.ref === null ? [] : [`ref:      ${i.ref}`, `digest:   ${i.digest ?? '-'}`]),
    `kernel:   ${i.kernel.name} (${i.kernel.id})`,
    `rootfs:   ${i.rootfs}${i.managed ? '' : ' (registered in place; `banger image promote` copies it in)'}`,
    `size:     ${formatBytes(i.sizeBytes)}`,
    ...(i.recipe === null ? [] : [`recipe:   ${i.recipe.suite} minbase + ${i.recipe.packages.join(', ')}`, `mirror:   ${i.recipe.mirror}`]),
    `created:  ${i.createdAt}`,
  ].join('\n');
}
