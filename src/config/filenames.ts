/**
 * Every file and directory name banger creates, in one place. Paths are built
 * from these by src/config/paths.ts; nothing else spells a file name.
 * docs/state-layout.md describes what each one holds.
 */

/** Under the config dir ($XDG_CONFIG_HOME/banger). */
export const CONFIG_FILE = 'config.toml';
/** banger's own ssh_config for `ssh root@<vm>.vm`; ~/.ssh/config includes it only after `banger ssh-config --install`. */
export const SSH_CONFIG = 'ssh_config';

/** Under the state dir ($XDG_STATE_HOME/banger). */
export const STATE_DB = 'state.db';
export const DAEMON_LOG = 'bangerd.log';
export const SSH_DIR = 'ssh';
export const SSH_KEY = 'id_ed25519';
export const KNOWN_HOSTS = 'known_hosts';
export const VMS_DIR = 'vms';
export const IMAGES_DIR = 'images';
export const KERNELS_DIR = 'kernels';

/** Under the runtime dir ($XDG_RUNTIME_DIR/banger or /tmp/banger-runtime-<uid>). */
export const DAEMON_SOCKET = 'bangerd.sock';
/** The one-daemon-per-runtime-dir lock (a record lock on an empty file; see src/daemon/instance-lock.ts). */
export const DAEMON_LOCK = 'bangerd.lock';
export const RUNTIME_DIR_NAME = 'banger';
export const RUNTIME_FALLBACK_PREFIX = 'banger-runtime-';

/** Under the cache dir ($XDG_CACHE_HOME/banger). */
export const DOWNLOADS_DIR = 'downloads';

/** Inside a kernel's directory (`kernels/<id>/`). */
export const KERNEL_VMLINUX = 'vmlinux';
export const KERNEL_INITRAMFS = 'initramfs.cpio';
export const KERNEL_MODULES_DIR = 'modules';

/** Prefix of in-progress directories; whatever carries it after a crash is garbage. */
export const STAGING_PREFIX = '.staging-';

/** Inside an image's directory (`images/<id>/`). */
export const IMAGE_ROOTFS = 'rootfs.ext4';

/** Under the cache dir: .deb files apt downloaded while building images, reused by later builds. */
export const APT_CACHE_DIR = 'apt-archives';

/** Under the cache dir: OCI blobs by digest (`blobs/sha256/<hex>`), shared by every registry pull. */
export const OCI_CACHE_DIR = 'oci';

/** Inside a VM's directory (`vms/<id>/`); sockets live in the runtime dir (`vms/<id>/`) instead. */
export const VM_UPPER_DISK = 'upper.ext4';
export const VM_WORK_DISK = 'work.ext4';
export const VM_HANDLES = 'handles.json';
/**
 * The guest's serial console as the daemon records it (`vm logs`), appended
 * across boots; at its size cap it becomes VM_CONSOLE_LOG_ROTATED, replacing
 * the previous one (src/services/vm/console-log.ts).
 */
export const VM_CONSOLE_LOG = 'console.log';
/** What a capped log's previous generation is called: its name plus this (console.log.1). */
export const ROTATED_SUFFIX = '.1';
export const VM_CONSOLE_LOG_ROTATED = VM_CONSOLE_LOG + ROTATED_SUFFIX;
/** The VMM's own stdout and stderr (not the guest's console), rewritten at each start. */
export const VM_VMM_LOG = 'vmm.log';

/**
 * Inside a VM's runtime dir (`vms/<id>/` under the runtime dir): the guest's
 * serial console on its way to the daemon. QEMU listens on the socket;
 * Firecracker writes the named pipe.
 */
export const VM_CONSOLE_SOCKET = 'console.sock';
export const VM_CONSOLE_FIFO = 'console.fifo';
