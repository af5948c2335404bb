import { resolve } from 'node:path';

import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

import type { KernelInfo } from '../../rpc/methods.js';
import { BangerError } from '../../rpc/errors.js';
import { BUNDLE_SUFFIX, isBundleSource } from '../../rpc/schemas.js';
import { createContext } from '../context.js';
import { table } from '../render/text.js';
import { bundleArgument, renderExported } from './image.js';

export function kernelCommand(): CommandUnknownOpts {
  const kernel = new Command('kernel').description('Manage guest kernels (fetched from the catalog or imported)').addHelpText(
    'after',
    `
A kernel is a vmlinux plus banger's initramfs for it. Catalog kernels come from
Debian's archive, verified through its signed index; \`vm create\` pulls the one
its image needs automatically.`,
  );

  kernel
    .command('list')
    .alias('ls')
    .description('List kernels on this host')
    .action(async (_options, command) => {
      const cli = createContext(command);
      const { kernels } = await cli.call('kernelList', {});
      cli.out.result({ kernels }, ({ kernels: list }) =>
        list.length === 0
          ? 'no kernels yet (`banger kernel catalog` lists what can be pulled)'
          : table([['NAME', 'ID', 'SOURCE', 'VERSION', 'RELEASE'], ...list.map((k) => [k.name, k.id, k.source, k.version ?? '-', k.release ?? '-'])]),
      );
    });

  kernel
    .command('catalog')
    .description('List the kernels banger can pull')
    .action(async (_options, command) => {
      const cli = createContext(command);
      const result = await cli.call('kernelCatalog', {});
      cli.out.result(result, ({ entries }) =>
        table([['NAME', 'PULLED', 'DESCRIPTION'], ...entries.map((e) => [e.name, e.pulled ? 'yes' : 'no', e.description])]),
      );
    });

  kernel
    .command('show')
    .description('Show one kernel (by name, id, or a unique prefix of either)')
    .argument('<kernel>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      const info = await cli.call('kernelShow', { ref });
      cli.out.result(info, renderKernel);
    });

  kernel
    .command('pull')
    .description('Fetch a catalog kernel, or take a kernel bundle, and build its initramfs')
    .argument('<source>', `catalog name (see \`banger kernel catalog\`), or a ${BUNDLE_SUFFIX} kernel bundle (path or URL)`)
    .option('--name <name>', "name for a bundle's kernel (default: its manifest)")
    .option('--sha256 <hex>', 'sha256 the bundle must have (required for a URL; checked for a file when given)')
    .addHelpText(
      'after',
      `
Kernel bundles (written by \`banger kernel export\`) hold vmlinux, the guest
modules and a manifest; banger builds the initramfs here, as for any kernel:
  banger kernel pull ./k.tar.zst
  banger kernel pull https://host/k.tar.zst --sha256 <hex>`,
    )
    .action(async (source, options, command) => {
      const cli = createContext(command);
      const bundle = isBundleSource(source);
      if (!bundle && options.name !== undefined)
        throw new BangerError('ERR_USAGE', '--name is for kernel bundles', { hint: 'a catalog kernel keeps its name' });
      const result = await cli.callWithProgress('kernelPull', {
        ...(bundle ? { source: bundleArgument(source) } : { name: source }),
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }),
      });
      cli.out.result(result, (r) =>
        r.pulled ? `pulled kernel ${r.kernel.name} (${r.kernel.id})` : `kernel ${r.kernel.name} is already present (${r.kernel.id})`,
      );
    });

  kernel
    .command('export')
    .description('Write a kernel as a bundle (a .tar.zst of vmlinux, its modules and a manifest) that `kernel pull` takes back')
    .argument('<kernel>', 'name or id')
    .argument('<file>', `bundle to write (ending in ${BUNDLE_SUFFIX})`)
    .option('--force', 'replace the file if it exists')
    .action(async (ref, file, options, command) => {
      const cli = createContext(command);
      const result = await cli.callWithProgress('kernelExport', { ref, path: resolve(file), ...(options.force === true ? { force: true } : {}) });
      cli.out.result(result, (r) => renderExported(`kernel ${r.kernel}`, r));
    });

  kernel
    .command('import')
    .description('Import a kernel from files (a bzImage or vmlinux, plus its modules)')
    .argument('<name>', 'name for the new kernel')
    .requiredOption('--kernel <path>', 'bzImage (LZ4-compressed) or uncompressed vmlinux ELF')
    .option('--modules <dir>', 'module tree (lib/modules/<release>) providing virtio_mmio, virtio_blk, virtio_net and overlay; omit when they are built in')
    .action(async (name, options, command) => {
      const cli = createContext(command);
      const params = {
        name,
        kernelPath: resolve(options.kernel),
        ...(options.modules === undefined ? {} : { modulesDir: resolve(options.modules) }),
      };
      const info = await cli.callWithProgress('kernelImport', params);
      cli.out.result(info, (k) => `imported kernel ${k.name} (${k.id})`);
    });

  kernel
    .command('delete')
    .alias('rm')
    .description('Delete a kernel (refused while an image uses it)')
    .argument('<kernel>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      const info = await cli.call('kernelDelete', { ref });
      cli.out.result(info, (k) => `deleted kernel ${k.name} (${k.id})`);
    });

  return kernel;
}

function renderKernel(k: KernelInfo): string {
  return [
    `name:      ${k.name}`,
    `id:        ${k.id}`,
    `source:    ${k.source}`,
    `version:   ${k.version ?? '-'}`,
    `release:   ${k.release ?? '-'}`,
    ...(k.package === null ? [] : [`package:   ${k.package.name} ${k.package.version}`, `sha256:    ${k.package.sha256}`, `url:       ${k.package.url}`]),
    `modules:   ${k.modules.length === 0 ? '(none)' : k.modules.join(', ')}`,
    `vmlinux:   ${k.files.vmlinux}`,
    `initramfs: ${k.files.initramfs}`,
    `created:   ${k.createdAt}`,
  ].join('\n');
}
