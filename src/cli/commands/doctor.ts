import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { hostFacts } from '../../config/vm-defaults.js';
import type { CheckResult, DoctorReport } from '../../doctor/report.js';
import { createContext, setExitCode } from '../context.js';
import { EXIT_FAILURE } from '../exit-codes.js';

export function doctorCommand(): CommandUnknownOpts {
  return new Command('doctor')
    .description('Check this host can run banger VMs (changes nothing)')
    .addHelpText(
      'after',
      `
Each check passes, warns (works, with a caveat) or fails (banger cannot work
until fixed), with a hint for what to do. Doctor only reads: it does not start
the daemon, create directories, or migrate the store.

Exit status: 0 when nothing failed, 1 otherwise.`,
    )
    .action(async (_options, command) => {
      const cli = createContext(command);
      // Loaded on use: the checks pull in the store, VMM drivers and more, which other commands never need.
      const { runDoctor } = await import('../../doctor/doctor.js');
      const report = await runDoctor({
        layout: cli.layout,
        uid: cli.pathEnv.uid,
        home: cli.pathEnv.home,
        env: cli.pathEnv.env,
        host: hostFacts(),
      });
      cli.out.result(report, renderReport);
      if (!report.ok) setExitCode(EXIT_FAILURE);
    });
}

const LABELS: Record<CheckResult['status'], string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' };

function renderReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.flatMap((c) => {
    const line = `${LABELS[c.status]}  ${c.name.padEnd(width)}  ${c.detail}`;
    return c.hint === undefined || c.status === 'pass' ? [line] : [line, `${' '.repeat(width + 8)}hint: ${c.hint}`];
  });
  const { pass, warn, fail } = report.summary;
  lines.push('', `doctor: ${pass} pass · ${warn} warn · ${fail} fail`);
  return lines.join('\n');
}
