import { open } from 'node:fs/promises';

import { BangerError } from '../../rpc/errors.js';
import { entryHeader, paxExtendedHeader } from '../../workspace/tar-writer.js';
import { readTarIndex, type TarMember, type TarMemberType } from './tar-index.js';
import { BufferedWriter, copyRange } from './tar-output.js';

/**
 * Flattens an image's layers (uncompressed tar files, lowest first) into one
 * tarball of the final tree, the way a container runtime would stack them,
 * without unpacking anything: the layers are indexed, the final tree is
 * modelled in memory, and the tarball is written by copying each surviving
 * member's own header and data bytes (owners, modes, times, xattrs as the
 * layer recorded them).
 *
 * Layer rules (OCI image spec, "Representing changes"):
 * - `.wh.NAME` hides NAME of lower layers; `.wh..wh..opq` hides everything a
 *   directory held in lower layers. Neither marker appears in the output.
 * - A later entry replaces an earlier one at the same path (and everything
 *   under it), except that a directory over a directory only updates the
 *   directory's own metadata.
 * - A hard link refers to a path as it stood when the link was made. When
 *   that path was later removed or replaced, the first surviving link takes
 *   the data and the others link to it.
 *
 * Safety, because the output is unpacked (by GNU tar, in a user namespace)
 * and layers are untrusted: a name or link target with a `..` component, a
 * member written through a symbolic link (a later `etc/x` when `etc` is a
 * symlink, which an unpacker would follow, possibly out of the root), a hard
 * link to a missing path or a directory, and tar types other than files,
 * directories, links, devices and fifos are refused with ERR_IMAGE_UNSAFE or
 * ERR_IMAGE_INVALID. Every path appears once in the output and none goes
 * through a symlink, so unpacking it cannot escape its directory.
 */

/** A file banger adds to an image (applied over every layer; root-owned). */
export type ExtraEntry =
  | { path: string; type: 'file'; content: Buffer; mode: number }
  | { path: string; type: 'directory'; mode: number }
  | { path: string; type: 'symlink'; target: string };

interface LinkGroup {
  /** The member that carries the data (the first path of the inode). */
  origin: Node;
  /** Hard links to it, in the order they were made. */
  links: Node[];
}

interface Node {
  path: string;
  kind: TarMemberType;
  /** The layer that last declared this node (extras are layer `layers.length`). */
  layer: number;
  member?: TarMember | undefined;
  extra?: ExtraEntry | undefined;
  /** Directories only. */
  children?: Map<string, Node> | undefined;
  group?: LinkGroup | undefined;
  removed: boolean;
}

const OPAQUE = '.wh..wh..opq';
const WHITEOUT = '.wh.';
const BLOCK = 512;
const MAX_SYMLINK_HOPS = 16;
const READ_LIMIT = 1024 * 1024;

function unsafe(message: string): BangerError {
  return new BangerError('ERR_IMAGE_UNSAFE', message, { hint: 'the image was refused and nothing was kept; rebuild it without paths that leave its root' });
}

function invalid(message: string): BangerError {
  return new BangerError('ERR_IMAGE_INVALID', message, { hint: 'the image was refused and nothing was kept; check how it was built' });
}

/**
 * A tar name as a path inside the root: no leading `/` or `./`, no empty or
 * `.` components; '' is the root itself. Throws for a `..` component.
 */
export function normalizeMemberPath(name: string, what: string): string {
  const components = name.split('/').filter((c) => c !== '' && c !== '.');
  if (components.includes('..')) throw unsafe(`${what}: ${JSON.stringify(name)} has a ".." component`);
  return components.join('/');
}

function isDir(node: Node): boolean {
  return node.kind === 'directory';
}

export class MergedTree {
  readonly #layers: readonly string[];
  readonly #members: TarMember[][] = [];
  readonly #root: Node = { path: '', kind: 'directory', layer: -1, children: new Map(), removed: false };
  readonly #byMember = new Map<TarMember, Node>();
  readonly #implicit: Node[] = [];
  readonly #extras: Node[] = [];

  private constructor(layers: readonly string[]) {
    this.#layers = layers;
  }

  /** Indexes `layers` (uncompressed tar files, lowest first) and models the final tree. */
  static async build(layers: readonly string[], signal?: AbortSignal): Promise<MergedTree> {
    const tree = new MergedTree(layers);
    for (const [index, path] of layers.entries()) {
      signal?.throwIfAborted();
      let members: TarMember[];
      try {
        members = await readTarIndex(path);
      } catch (error) {
        throw invalid(`layer ${index + 1} is not a valid tar archive: ${error instanceof Error ? error.message : String(error)}`);
      }
      tree.#members.push(members);
      for (const member of members) tree.#apply(member, index);
    }
    return tree;
  }

  #apply(member: TarMember, layer: number): void {
    const what = `layer ${layer + 1}`;
    const path = normalizeMemberPath(member.name, what);
    if (member.type === 'other' || Object.keys(member.pax).some((key) => key.startsWith('GNU.sparse'))) {
      throw invalid(`${what}: ${JSON.stringify(member.name)} is a kind of tar entry banger cannot unpack (sparse, or an unknown type)`);
    }
    if (path === '') {
      if (member.type !== 'directory') throw invalid(`${what}: the root entry is not a directory`);
      if (this.#root.member !== undefined) this.#byMember.delete(this.#root.member);
      this.#root.member = member;
      this.#root.layer = layer;
      this.#byMember.set(member, this.#root);
      return;
    }
    const slash = path.lastIndexOf('/');
    const base = path.slice(slash + 1);
    const parentPath = slash === -1 ? '' : path.slice(0, slash);
    if (base.startsWith(WHITEOUT)) {
      // A marker for a directory no lower layer made hides nothing.
      const dir = this.#resolve(parentPath === '' ? '' : `${parentPath}/x`, what, member.name, true);
      if (dir === undefined || !isDir(dir)) return;
      if (base === OPAQUE) hideLower(dir, layer);
      else {
        const hidden = dir.children?.get(base.slice(WHITEOUT.length));
        if (hidden !== undefined && hidden.layer < layer) detach(dir, hidden);
      }
      return;
    }
    const parent = this.#directory(parentPath, layer, what, member.name);
    const children = parent.children ?? new Map<string, Node>();
    const existing = children.get(base);
    if (member.type === 'directory' && existing !== undefined && isDir(existing)) {
      if (existing.member !== undefined) this.#byMember.delete(existing.member);
      existing.member = member;
      existing.layer = layer;
      this.#byMember.set(member, existing);
      return;
    }
    const node: Node = { path, kind: member.type, layer, member, removed: false, children: member.type === 'directory' ? new Map() : undefined };
    if (member.type === 'hardlink') {
      const targetPath = normalizeMemberPath(member.linkName, what);
      const target = this.#resolve(targetPath, what, member.name);
      if (target === undefined || target === existing)
        throw invalid(`${what}: ${JSON.stringify(member.name)} is a hard link to ${JSON.stringify(member.linkName)}, which does not exist`);
      if (isDir(target)) throw invalid(`${what}: ${JSON.stringify(member.name)} is a hard link to a directory`);
      target.group ??= { origin: target, links: [] };
      node.group = target.group;
      node.group.links.push(node);
    }
    if (existing !== undefined) detach(parent, existing);
    children.set(base, node);
    this.#byMember.set(member, node);
  }

  /** The directory at `path`, creating missing ones; a symlink or file on the way is refused. */
  #directory(path: string, layer: number, what: string, name: string): Node {
    let node = this.#root;
    if (path === '') return node;
    let at = '';
    for (const component of path.split('/')) {
      at = at === '' ? component : `${at}/${component}`;
      const children = node.children ?? new Map<string, Node>();
      let child = children.get(component);
      if (child === undefined) {
        child = { path: at, kind: 'directory', layer, children: new Map(), removed: false };
        children.set(component, child);
        this.#implicit.push(child);
      } else if (child.kind === 'symlink') {
        throw unsafe(`${what}: ${JSON.stringify(name)} would be written through the symbolic link ${at} -> ${child.member?.linkName ?? '?'}`);
      } else if (!isDir(child)) {
        throw invalid(`${what}: ${JSON.stringify(name)} lies under ${at}, which is not a directory`);
      }
      node = child;
    }
    return node;
  }

  /**
   * The node at `path` without following symlinks on the way (refused, as
   * for writes); with `parentOnly`, the directory holding it.
   */
  #resolve(path: string, what: string, name: string, parentOnly = false): Node | undefined {
    const slash = path.lastIndexOf('/');
    let node = this.#root;
    if (slash !== -1) {
      for (const component of path.slice(0, slash).split('/')) {
        const child = node.children?.get(component);
        if (child === undefined) return undefined;
        if (child.kind === 'symlink') throw unsafe(`${what}: ${JSON.stringify(name)} goes through the symbolic link ${child.path}`);
        if (!isDir(child)) return undefined;
        node = child;
      }
    }
    if (parentOnly) return node;
    return path === '' ? node : node.children?.get(path.slice(slash + 1));
  }

  /** Adds banger's own entries over the image (replacing what is at their paths). */
  addExtras(extras: readonly ExtraEntry[]): void {
    const layer = this.#layers.length;
    for (const extra of extras) {
      const path = normalizeMemberPath(extra.path, 'banger');
      const slash = path.lastIndexOf('/');
      const parent = this.#directory(slash === -1 ? '' : path.slice(0, slash), layer, 'banger', extra.path);
      const children = parent.children ?? new Map<string, Node>();
      const base = path.slice(slash + 1);
      const existing = children.get(base);
      if (extra.type === 'directory' && existing !== undefined && isDir(existing)) continue;
      if (existing !== undefined) detach(parent, existing);
      const node: Node = { path, kind: extra.type, layer, extra, removed: false, children: extra.type === 'directory' ? new Map() : undefined };
      children.set(base, node);
      this.#extras.push(node);
    }
  }

  /** What is at `path` in the final tree ('' is the root), symlinks not followed. */
  stat(path: string): { kind: TarMemberType; mode: number; uid: number; gid: number; linkName: string } | undefined {
    const node = this.#lookup(normalizeMemberPath(path, 'lookup'));
    if (node === undefined) return undefined;
    const member = node.kind === 'hardlink' ? node.group?.origin.member : node.member;
    const kind = node.kind === 'hardlink' ? (node.group?.origin.kind ?? 'file') : node.kind;
    return { kind, mode: member?.mode ?? 0o755, uid: member?.uid ?? 0, gid: member?.gid ?? 0, linkName: member?.linkName ?? '' };
  }

  /**
   * The content of the regular file at `path`, following symlinks inside the
   * image (absolute targets are taken from the image's root); undefined when
   * there is none. Reads at most 1 MiB.
   */
  async readFile(path: string): Promise<Buffer | undefined> {
    const node = this.#follow(path);
    const source = node?.kind === 'hardlink' ? node.group?.origin : node;
    if (source?.extra?.type === 'file') return source.extra.content;
    if (source?.kind !== 'file' || source.member === undefined) return undefined;
    // Only directories are re-declared in place, so a file's layer is the one it was read from.
    const layerPath = this.#layers[source.layer];
    if (layerPath === undefined) return undefined;
    const file = await open(layerPath, 'r');
    try {
      const size = Math.min(source.member.size, READ_LIMIT);
      const data = Buffer.alloc(size);
      await file.read(data, 0, size, source.member.dataOffset);
      return data;
    } finally {
      await file.close();
    }
  }

  /** Whether `path` is (a symlink inside the image to) a regular file. */
  isFile(path: string): boolean {
    const node = this.#follow(path);
    const kind = node?.kind === 'hardlink' ? node.group?.origin.kind : node?.kind;
    return kind === 'file';
  }

  /** The node at `path` with every symlink followed inside the root; undefined when missing or looping. */
  #follow(path: string): Node | undefined {
    let current = normalizeMemberPath(path, 'lookup');
    for (let hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
      const node = this.#lookupFollowing(current);
      if (node?.kind !== 'symlink') return node;
      const target = node.member?.linkName ?? (node.extra?.type === 'symlink' ? node.extra.target : '');
      const base = target.startsWith('/') ? '' : current.split('/').slice(0, -1).join('/');
      current = resolveInRoot(base, target);
    }
    return undefined;
  }

  #lookup(path: string): Node | undefined {
    if (path === '') return this.#root;
    let node: Node | undefined = this.#root;
    for (const component of path.split('/')) {
      node = node.children?.get(component);
      if (node === undefined) return undefined;
    }
    return node;
  }

  /** Like #lookup, but symlinks in directory components are followed inside the root. */
  #lookupFollowing(path: string, depth = 0): Node | undefined {
    if (depth > MAX_SYMLINK_HOPS) return undefined;
    const components = path === '' ? [] : path.split('/');
    let node: Node = this.#root;
    let at = '';
    for (const [index, component] of components.entries()) {
      const child = node.children?.get(component);
      if (child === undefined) return undefined;
      at = at === '' ? component : `${at}/${component}`;
      if (child.kind === 'symlink' && index < components.length - 1) {
        const target = child.member?.linkName ?? (child.extra?.type === 'symlink' ? child.extra.target : '');
        const base = target.startsWith('/') ? '' : at.split('/').slice(0, -1).join('/');
        return this.#lookupFollowing([resolveInRoot(base, target), ...components.slice(index + 1)].filter((c) => c !== '').join('/'), depth + 1);
      }
      node = child;
    }
    return node;
  }

  /**
   * Writes the final tree as one tarball to `target`: directories banger had
   * to assume first (root-owned, 0755), then every surviving member in layer
   * order, then banger's extras. Returns the number of members written.
   */
  async write(target: string, signal?: AbortSignal): Promise<number> {
    const renamed = new Map<Node, string>();
    const skipped = new Set<Node>();
    const relinked = new Map<Node, string>();
    for (const group of this.#groups()) {
      const links = group.links.filter((link) => !link.removed);
      let primary = group.origin.path;
      if (group.origin.removed) {
        const first = links.shift();
        if (first === undefined) continue;
        renamed.set(group.origin, first.path);
        skipped.add(first);
        primary = first.path;
      }
      for (const link of links) {
        if (normalizeMemberPath(link.member?.linkName ?? '', 'link') !== primary) relinked.set(link, primary);
      }
    }
    const out = await open(target, 'w', 0o600);
    let count = 0;
    try {
      const writer = new BufferedWriter(out);
      const implicit = this.#implicit.filter((node) => !node.removed && node.member === undefined);
      implicit.sort((a, b) => a.path.split('/').length - b.path.split('/').length);
      for (const node of implicit) {
        await writer.write(entryHeader({ name: `${node.path}/`, mode: 0o755, mtime: 0, kind: { type: 'dir' } }));
        count++;
      }
      for (const [index, path] of this.#layers.entries()) {
        signal?.throwIfAborted();
        const layer = await open(path, 'r');
        try {
          for (const member of this.#members[index] ?? []) {
            const node = this.#byMember.get(member);
            if (node === undefined) continue;
            const newName = renamed.get(node);
            if (node.removed && newName === undefined) continue;
            if (skipped.has(node)) continue;
            const newLink = relinked.get(node);
            if (newName === undefined && newLink === undefined) {
              await copyRange(layer, writer, member.headerOffset, member.dataOffset + padded(member.size) - member.headerOffset);
            } else {
              const records = { ...member.pax, ...(newName === undefined ? {} : { path: newName }), ...(newLink === undefined ? {} : { linkpath: newLink }) };
              await writer.write(paxExtendedHeader(records));
              await copyRange(layer, writer, member.mainHeaderOffset, BLOCK + padded(member.size));
            }
            count++;
          }
        } finally {
          await layer.close();
        }
      }
      for (const node of this.#extras) {
        if (node.removed || node.extra === undefined) continue;
        const extra = node.extra;
        const name = extra.type === 'directory' ? `${node.path}/` : node.path;
        const mtime = Date.now() / 1000;
        if (extra.type === 'file') {
          await writer.write(entryHeader({ name, mode: extra.mode, mtime, kind: { type: 'file', size: extra.content.length } }));
          await writer.write(extra.content);
          await writer.write(Buffer.alloc(padded(extra.content.length) - extra.content.length));
        } else if (extra.type === 'directory') {
          await writer.write(entryHeader({ name, mode: extra.mode, mtime, kind: { type: 'dir' } }));
        } else {
          await writer.write(entryHeader({ name, mode: 0o777, mtime, kind: { type: 'symlink', target: extra.target } }));
        }
        count++;
      }
      await writer.write(Buffer.alloc(BLOCK * 2));
      await writer.flush();
    } finally {
      await out.close();
    }
    return count;
  }

  #groups(): LinkGroup[] {
    const groups = new Set<LinkGroup>();
    for (const node of this.#byMember.values()) if (node.group !== undefined) groups.add(node.group);
    return [...groups];
  }
}

/** Hides what `dir` held below `layer`; directories re-declared in `layer` stay, emptied of their lower content. */
function hideLower(dir: Node, layer: number): void {
  for (const child of [...(dir.children?.values() ?? [])]) {
    if (child.layer < layer) detach(dir, child);
    else if (isDir(child)) hideLower(child, layer);
  }
}

function detach(parent: Node, node: Node): void {
  parent.children?.delete(node.path.slice(node.path.lastIndexOf('/') + 1));
  markRemoved(node);
}

function markRemoved(node: Node): void {
  node.removed = true;
  for (const child of node.children?.values() ?? []) markRemoved(child);
}

/** A symlink target resolved against `base` (a directory path in the root), `..` stopping at the root as in a chroot. */
function resolveInRoot(base: string, target: string): string {
  const parts = base === '' ? [] : base.split('/');
  for (const component of target.split('/')) {
    if (component === '' || component === '.') continue;
    if (component === '..') parts.pop();
    else parts.push(component);
  }
  return parts.join('/');
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}
