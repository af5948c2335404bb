import { BangerError } from '../../rpc/errors.js';
import type { ImageRecord } from '../../store/images-repo.js';
import type { ImageService } from '../image/image-service.js';
import { looksLikeReference } from '../image/registry-images.js';
import type { OpContext } from '../op-context.js';

/** What resolving a create's image needs of the image service. */
export type CreateImages = Pick<ImageService, 'list' | 'find' | 'inCatalog' | 'pull' | 'findByReference'>;

/**
 * The image a create asked for. Names are matched exactly first; a catalog
 * name not pulled yet is pulled rather than prefix-matched to some other
 * image (`debian-bookworm` must never boot `debian-bookworm-dev`). Only a
 * ref the user typed may be an id or a unique prefix.
 */
export async function resolveCreateImage(images: CreateImages, ref: string, options: { typed: boolean }, ctx: OpContext): Promise<ImageRecord> {
  const exact = images.list().find((image) => image.name === ref || image.id === ref);
  if (exact !== undefined) return exact;
  if (images.inCatalog(ref)) {
    ctx.progress('pull', `image ${ref} is not here yet: pulling it from the catalog`);
    return (await images.pull(ref, ctx)).image;
  }
  const pulled = images.findByReference(ref);
  if (pulled !== undefined) return pulled;
  if (looksLikeReference(ref)) {
    ctx.progress('pull', `image ${ref} is not here yet: pulling it from its registry`);
    return (await images.pull(ref, ctx)).image;
  }
  if (options.typed) {
    try {
      return images.find(ref);
    } catch (error) {
      if (!(error instanceof BangerError) || error.code !== 'ERR_NOT_FOUND') throw error;
      throw new BangerError(error.code, error.message, {
        hint: `see \`banger image list\` and \`banger image catalog\`; a registry image needs a tag or registry, e.g. ${ref}:latest or docker.io/library/${ref}`,
      });
    }
  }
  throw new BangerError('ERR_NOT_FOUND', `the default image "${ref}" does not exist and is not in the catalog`, {
    hint: 'set default_image in config.toml to an image from `banger image list`, or pass --image',
  });
}
