import { existsSync } from 'node:fs';

import type { Layout } from '../config/paths.js';
import { includeInstalled, userSshConfigPath } from '../guest/ssh-config.js';
import { check, type CheckResult } from './report.js';

/**
 * Whether plain `ssh root@<name>.vm` works: banger's ssh_config is written by
 * the daemon, but the user's ~/.ssh/config reads it only after an explicit
 * `banger ssh-config --install`. Not having it is a choice, so this warns at
 * most (`banger vm ssh` works either way) and never fails.
 */
export function sshConfigCheck(layout: Pick<Layout, 'sshConfig'>, home: string): CheckResult {
  const id = 'ssh-config';
  const name = 'ssh config';
  const userConfig = userSshConfigPath(home);
  const installed = includeInstalled(userConfig, layout.sshConfig);
  if (installed) return check(id, name, 'pass', `${userConfig} includes ${layout.sshConfig}: \`ssh root@<name>.vm\` works`);
  if (!existsSync(layout.sshConfig)) {
    return check(id, name, 'pass', `${layout.sshConfig} not written yet (the daemon writes it when VMs run); \`banger ssh-config\` tells how to use it`);
  }
  return check(
    id,
    name,
    'warn',
    `${userConfig} does not include ${layout.sshConfig}, so plain \`ssh root@<name>.vm\` does not work (\`banger vm ssh\` does)`,
    'banger ssh-config --install',
  );
}
