/**
 * `banger doctor`: a read-only look at everything banger depends on. It runs
 * in the CLI process, not in the daemon, because it must work when the daemon
 * cannot start and must not create state (starting the daemon would create
 * the state dir, the store and the runtime dir).
 */

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  /** Stable identifier, e.g. `kvm`, `tool.mkfs.ext4`. */
  id: string;
  /** Short human label. */
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warn or fail. */
  hint?: string;
}

export interface DoctorReport {
  checks: CheckResult[];
  summary: Record<CheckStatus, number>;
  /** False when any check failed. */
  ok: boolean;
}

export function summarize(checks: CheckResult[]): DoctorReport {
  const summary: Record<CheckStatus, number> = { pass: 0, warn: 0, fail: 0 };
  for (const check of checks) summary[check.status]++;
  return { checks, summary, ok: summary.fail === 0 };
}

export function check(id: string, name: string, status: CheckStatus, detail: string, hint?: string): CheckResult {
  return hint === undefined ? { id, name, status, detail } : { id, name, status, detail, hint };
}
