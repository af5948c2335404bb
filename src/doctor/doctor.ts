import type { Layout } from '../config/paths.js';
import type { HostFacts } from '../config/vm-defaults.js';
import type { KvmHost } from '../host/kvm.js';
import { architectureCheck, hostToolChecks, kvmCheck, vmmCheck } from './host-checks.js';
import { helperCheck, subordinateIdCheck, tunCheck } from './privilege-checks.js';
import { summarize, type DoctorReport } from './report.js';
import { sshConfigCheck } from './ssh-config-check.js';
import { configCheck, runtimeDirCheck, stateDirCheck, storeCheck, vmDefaultsCheck } from './state-checks.js';

export interface DoctorInputs {
  layout: Layout;
  uid: number;
  home: string;
  env: NodeJS.ProcessEnv;
  host: HostFacts;
  arch?: string;
  kvmHost?: KvmHost;
}

/** Runs every check. Reads only: no file, directory or table is created or changed. */
export async function runDoctor(inputs: DoctorInputs): Promise<DoctorReport> {
  const { layout, env } = inputs;
  const { result: configResult, config } = configCheck(layout, inputs.home);
  return summarize([
    architectureCheck(inputs.arch),
    kvmCheck(inputs.kvmHost),
    ...hostToolChecks(env, { qemuBin: config?.qemuBin, firecrackerBin: config?.firecrackerBin }),
    vmmCheck(config, env, inputs.kvmHost),
    await helperCheck(inputs.uid, env, config),
    tunCheck(inputs.uid),
    subordinateIdCheck(inputs.uid),
    runtimeDirCheck(layout, inputs.uid),
    stateDirCheck(layout),
    storeCheck(layout),
    configResult,
    vmDefaultsCheck(config, inputs.host, layout.configFile),
    sshConfigCheck(layout, inputs.home),
  ]);
}
