import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { formatIpv6, GUEST_PORTS_SCRIPT, parseGuestPorts } from './guest-ports.js';

const GUEST_IP = '172.30.0.2';
const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const tcpLine = (sl: number, local: string, remote: string, state: string, inode: number): string =>
  `   ${sl}: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0`;

const OUTPUT = [
  '@net tcp',
  HEADER,
  tcpLine(0, '00000000:1F90', '00000000:0000', '0A', 1001), // 0.0.0.0:8080 LISTEN, httpd
  tcpLine(1, '0100007F:0CEA', '00000000:0000', '0A', 1002), // 127.0.0.1:3306 LISTEN, loopback only
  tcpLine(2, '02001EAC:0016', '0100A8C0:D431', '01', 1003), // 172.30.0.2:22 ESTABLISHED: not listening
  tcpLine(3, '02001EAC:1F91', '00000000:0000', '0A', 1004), // 172.30.0.2:8081, the guest's own address
  tcpLine(4, '0200A8C0:1F92', '00000000:0000', '0A', 1005), // 192.168.0.2:8082, another interface
  '   5: nonsense',
  '@net tcp6',
  HEADER,
  tcpLine(0, '00000000000000000000000000000000:0016', '00000000000000000000000000000000:0000', '0A', 2001), // [::]:22, sshd
  tcpLine(1, '00000000000000000000000001000000:1F93', '00000000000000000000000000000000:0000', '0A', 2002), // [::1]:8083
  tcpLine(2, '0000000000000000FFFF00000100007F:1F94', '00000000000000000000000000000000:0000', '0A', 2003), // ::ffff:127.0.0.1:8084
  '@net udp',
  HEADER,
  tcpLine(0, '00000000:0044', '00000000:0000', '07', 3001), // 0.0.0.0:68, dhcp
  tcpLine(1, '02001EAC:A000', '0100A8C0:0035', '01', 3002), // connected UDP: not listening
  '@net udp6',
  HEADER,
  '@fd',
  '/proc/1/fd:',
  'total 0',
  'lrwx------ 1 root root 64 Jan  1 00:00 0 -> /dev/null',
  '/proc/100/fd:',
  'lrwx------ 1 root root 64 Jan  1 00:00 3 -> socket:[1001]',
  '/proc/101/fd:',
  'lrwx------ 1 root root 64 Jan  1 00:00 3 -> socket:[1001]', // a forked worker shares the socket: the lowest pid owns it
  '/proc/200/fd:',
  'lrwx------    1 root     root            64 Jan  1 00:00 4 -> socket:[2001]', // busybox ls
  'lrwx------ 1 root root 64 Jan  1 00:00 5 -> socket:[3001]',
  '/proc/300/fd:',
  'lrwx------ 1 root root 64 Jan  1 00:00 5 -> socket:[1004]',
  '@comm',
  '1 init',
  '100 httpd',
  '101 httpd',
  '200 sshd',
  `300 evil\u001b[31m${'x'.repeat(200)}`,
  '',
].join('\n');

test('parseGuestPorts lists TCP listeners and unconnected UDP sockets with their owners and host addresses', () => {
  assert.deepEqual(parseGuestPorts(OUTPUT, GUEST_IP), [
    { proto: 'tcp', bindAddress: '::', port: 22, process: 'sshd', pid: 200, hostAddress: `${GUEST_IP}:22` },
    { proto: 'tcp', bindAddress: '127.0.0.1', port: 3306, process: null, pid: null, hostAddress: null },
    { proto: 'tcp', bindAddress: '0.0.0.0', port: 8080, process: 'httpd', pid: 100, hostAddress: `${GUEST_IP}:8080` },
    { proto: 'tcp', bindAddress: GUEST_IP, port: 8081, process: `evil[31m${'x'.repeat(56)}`, pid: 300, hostAddress: `${GUEST_IP}:8081` },
    { proto: 'tcp', bindAddress: '192.168.0.2', port: 8082, process: null, pid: null, hostAddress: null },
    { proto: 'tcp', bindAddress: '::1', port: 8083, process: null, pid: null, hostAddress: null },
    { proto: 'tcp', bindAddress: '::ffff:127.0.0.1', port: 8084, process: null, pid: null, hostAddress: null },
    { proto: 'udp', bindAddress: '0.0.0.0', port: 68, process: 'sshd', pid: 200, hostAddress: `${GUEST_IP}:68` },
  ]);
});

test('a process name is stripped of control characters and cut to 64 characters', () => {
  const evil = parseGuestPorts(OUTPUT, GUEST_IP).find((p) => p.port === 8081);
  assert.ok(evil?.process !== null && evil?.process !== undefined);
  assert.equal(evil.process.length, 64);
  assert.ok(!evil.process.includes('\u001b'), 'no escape character');
});

test('empty, truncated or garbage output gives no ports, never an exception', () => {
  assert.deepEqual(parseGuestPorts('', GUEST_IP), []);
  assert.deepEqual(parseGuestPorts('sh: ls: not found\n@net tcp\n   0: 00000000:1F90', GUEST_IP), []);
  assert.deepEqual(parseGuestPorts('@net tcp\n' + tcpLine(0, 'ZZZZZZZZ:1F90', '00000000:0000', '0A', 1), GUEST_IP), []);
  assert.deepEqual(parseGuestPorts('@net tcp\n' + tcpLine(0, '00000000:0000', '00000000:0000', '0A', 1), GUEST_IP), [], 'port 0 is no port');
  assert.deepEqual(parseGuestPorts('@net sctp\n' + tcpLine(0, '00000000:1F90', '00000000:0000', '0A', 1), GUEST_IP), [], 'unknown tables are skipped');
});

test('formatIpv6 writes RFC 5952 text', () => {
  const bytes = (hex: string): number[] => hex.match(/../g)?.map((b) => parseInt(b, 16)) ?? [];
  assert.equal(formatIpv6(bytes('00000000000000000000000000000000')), '::');
  assert.equal(formatIpv6(bytes('00000000000000000000000000000001')), '::1');
  assert.equal(formatIpv6(bytes('fe800000000000000000000000000001')), 'fe80::1');
  assert.equal(formatIpv6(bytes('20010db8000000010000000000000001')), '2001:db8:0:1::1');
  assert.equal(formatIpv6(bytes('20010db8000100010001000100010001')), '2001:db8:1:1:1:1:1:1');
  assert.equal(formatIpv6(bytes('00000000000000000000ffffac1e0002')), '::ffff:172.30.0.2');
});

test("the script runs in a POSIX sh and finds a real listener with its pid and name (this host stands in for a guest's /proc)", async () => {
  const listener = spawn(
    process.execPath,
    ['-e', "const s = require('net').createServer().listen(0, '0.0.0.0', () => console.log(s.address().port)); setTimeout(() => {}, 60000)"],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  try {
    const [chunk] = (await once(listener.stdout, 'data')) as [Buffer];
    const port = Number(chunk.toString().trim());
    const { stdout } = await promisify(execFile)('sh', ['-c', GUEST_PORTS_SCRIPT], { maxBuffer: 64 * 1024 * 1024 });
    const found = parseGuestPorts(stdout, '10.0.0.2').find((p) => p.proto === 'tcp' && p.port === port);
    assert.deepEqual(found, { proto: 'tcp', bindAddress: '0.0.0.0', port, process: 'node', pid: listener.pid, hostAddress: `10.0.0.2:${port}` });
  } finally {
    listener.kill('SIGKILL');
  }
});
