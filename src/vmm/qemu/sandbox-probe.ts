import { spawn } from 'node:child_process';

/**
 * QEMU's seccomp filter as banger runs it: no obsolete system calls, no
 * setuid/setgid and friends, no fork/exec (banger's tap needs no helper
 * script), no scheduler or resource-limit changes. A compromised QEMU keeps
 * only what emulating the guest needs.
 */
export const SANDBOX_OPTIONS = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

export type SandboxSupport = { supported: true } | { supported: false; reason: string };

/**
 * Whether this QEMU accepts `-sandbox SANDBOX_OPTIONS`: starts it with no
 * machine and QMP on stdio, installs the filter, and quits through QMP (about
 * 30 ms). A QEMU built without seccomp, or a kernel that refuses the filter,
 * exits with an error, which becomes the reason. The process is always gone
 * when this resolves.
 */
export function probeSandbox(binary: string, timeoutMs = 5_000): Promise<SandboxSupport> {
  return new Promise((resolve) => {
    const child = spawn(binary, ['-machine', 'none', '-nodefaults', '-no-user-config', '-display', 'none', '-sandbox', SANDBOX_OPTIONS, '-qmp', 'stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (result: SandboxSupport): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(result);
    };
    const timer = setTimeout(() => {
      finish({ supported: false, reason: `${binary} -sandbox did not answer within ${timeoutMs} ms` });
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // QEMU may exit (unsupported) before reading this; the write error is of no interest then.
    child.stdin.on('error', () => undefined);
    child.stdin.end('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
    child.on('error', (error) => {
      finish({ supported: false, reason: `cannot run ${binary}: ${error.message}` });
    });
    child.on('close', (code, signal) => {
      // The QMP greeting proves a QEMU ran with the filter installed, not just some program that exited 0.
      if (code === 0 && stdout.includes('"QMP"')) finish({ supported: true });
      else {
        const said = stderr.trim().split('\n').at(-1)?.trim() ?? '';
        finish({ supported: false, reason: said !== '' ? said : `${binary} -sandbox exited with ${code ?? signal ?? 'unknown status'}` });
      }
    });
  });
}
