import { spawn } from 'node:child_process';

/** Shared by the benchmarks: medians, timing, and the system ssh a user would type. */

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export function milliseconds(ms: number): string {
  return `${Math.round(ms)} ms`;
}

/** Runs `fn` `runs` times; returns each run's wall time in ms. */
export async function timeRuns(runs: number, fn: (run: number) => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    await fn(run);
    times.push(performance.now() - started);
  }
  return times;
}

export function report(label: string, times: readonly number[], format: (ms: number) => string = seconds): number {
  const m = median(times);
  console.log(`${label.padEnd(56)} median ${format(m).padStart(9)}  (${times.map((t) => format(t)).join(', ')})`);
  return m;
}

/** A fresh system ssh to the guest with banger's key: what a user without banger would run. */
export function sshCommand(host: string, keyPath: string, knownHosts: string, command: string, options: { connectTimeoutSeconds?: number } = {}): string[] {
  const timeout = options.connectTimeoutSeconds === undefined ? [] : ['-o', `ConnectTimeout=${options.connectTimeoutSeconds}`];
  const opts = [
    '-F',
    '/dev/null',
    '-i',
    keyPath,
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'BatchMode=yes',
    '-o',
    'LogLevel=ERROR',
  ];
  return ['ssh', ...opts, ...timeout, `root@${host}`, command];
}

/** Runs a command line through sh; rejects on a non-zero exit. */
export function sh(script: string, options: { cwd?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'], ...options });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${script} exited ${code ?? '?'}: ${stderr}`));
    });
  });
}

/** Quotes for sh. */
export function q(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The nearest-rank `p`th percentile (0 < p <= 100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
