/**
 * The sshd drop-in every VM gets on its upper disk
 * (/etc/ssh/sshd_config.d/99-banger.conf): key-only root login, no password
 * or keyboard-interactive fallback, StrictModes left on (banger gives /root
 * and .ssh correct modes instead). UsePAM no and a single curve25519 key
 * exchange make each new connection cheap under emulation (measured: 1-2 s
 * down to ~0.55 s per connection under TCG). banger runs guest commands as
 * channels of one open connection, so a VM allows more of them at once than
 * sshd's default of 10.
 */
export const SSHD_DROPIN = [
  '# Written by banger for this VM.',
  'PermitRootLogin prohibit-password',
  'PubkeyAuthentication yes',
  'PasswordAuthentication no',
  'KbdInteractiveAuthentication no',
  'AuthorizedKeysFile /root/.ssh/authorized_keys',
  'HostKey /etc/ssh/ssh_host_ed25519_key',
  'UsePAM no',
  'KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org',
  'MaxSessions 64',
  '',
].join('\n');

/** busybox init's table for --init minimal: keep sshd running, power off on Ctrl-Alt-Del. */
export const MINIMAL_INITTAB = ['::respawn:/usr/sbin/sshd -D -e', '::ctrlaltdel:/banger/busybox poweroff', '::shutdown:/banger/busybox sync', ''].join('\n');
