import { resolve } from 'node:path';

import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

import type { ImageInfo } from '../../rpc/methods.js';
import { createContext } from '../context.js';
import { formatBytes, table } from '../render/text.js';

export function imageCommand(): CommandUnknownOpts {
  const image = new Command('image').description('Manage VM images (read-only root filesystems shared by VMs)').addHelpText(
    'after',
    `
An image is a read-only ext4 root plus the kernel it boots with. Every VM gets
its own copy-on-write layer on top, so the image itself never changes.
Catalog images are built on this host from Debian's archive; \`vm create\` pulls
the one it needs automatically.`,
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
    .description('Pull an image: build a catalog image here, or fetch one from an OCI registry')
    .argument('<source>', 'catalog name (see `banger image catalog`), an image here (re-checked), or a registry reference')
    .option('--name <name>', 'name for a registry image (default: from the reference, e.g. node-22)')
    .option('--kernel <kernel>', "kernel to boot a registry image with (default: the catalog's Debian kernel)")
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
asks the registry for the manifest and does nothing when it is unchanged.`,
    )
    .action(async (source, options, command) => {
      const cli = createContext(command);
      const result = await cli.callWithProgress('imagePull', {
        source,
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
      });
      cli.out.result(result, (r) =>
        r.pulled
          ? `pulled image ${r.image.name} (${r.image.id})${r.image.digest === null ? '' : ` ${r.image.digest}`}`
          : `image ${r.image.name} is up to date (${r.image.id})`,
      );
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
