import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TomlError } from 'smol-toml';

import { BangerError } from '../rpc/errors.js';
import { parseConfig } from './schema.js';

const PATH = '/home/u/.config/banger/config.toml';
const HOME = '/home/u';
const parse = (text: string): ReturnType<typeof parseConfig> => parseConfig(text, { path: PATH, home: HOME });

/** Each invalid file and the exact message it must produce (after the `<path>: ` prefix). */
const INVALID: [string, string, string][] = [
  ['unknown top-level key', 'colour = "red"', 'unknown key "colour"'],
  ['unknown nested key', '[vm_defaults]\ncpus = 2', 'unknown key "vm_defaults.cpus"'],
  ['unknown network key', '[network]\nmtu = 1500', 'unknown key "network.mtu"'],
  ['unknown file_sync key', '[[file_sync]]\nhost = "~/.aws"\nguest = "~/.aws"\ncolour = 1', 'unknown key "file_sync[0].colour"'],
  ['wrong type', 'default_image = 7', 'default_image: expected a string, got 7'],
  ['bad image name', 'default_image = "Debian_Bookworm"', 'default_image: "Debian_Bookworm" is not a valid image name'],
  ['bad vmm', 'vmm = "bochs"', 'vmm: expected "auto", "qemu" or "firecracker", got "bochs"'],
  ['relative qemu_bin', 'qemu_bin = "qemu"', 'qemu_bin: expected an absolute path, got "qemu"'],
  ['bad mirror', 'kernel_mirror = "ftp://x"', 'kernel_mirror: expected an http(s) URL, got "ftp://x"'],
  ['mirror with a space', 'kernel_mirror = "http://a b/debian"', 'kernel_mirror: expected an http(s) URL, got "http://a b/debian"'],
  ['wrong type for vmm', 'vmm = true', 'vmm: expected a string, got true'],
  ['wrong type nested', '[network]\nbridge = 3', 'network.bridge: expected a string, got 3'],
  ['vcpu out of range', '[vm_defaults]\nvcpu = 0', 'vm_defaults.vcpu: must be an integer from 1 to 64, got 0'],
  ['vcpu not a number', '[vm_defaults]\nvcpu = "four"', 'vm_defaults.vcpu: must be an integer from 1 to 64, got "four"'],
  [
    'bad memory string',
    '[vm_defaults]\nmemory = "lots"',
    'vm_defaults.memory: must be MiB from 128 to 1048576 (a whole number of MiB, or a size like "2G"), got "lots"',
  ],
  [
    'memory too small',
    '[vm_defaults]\nmemory = 64',
    'vm_defaults.memory: must be MiB from 128 to 1048576 (a whole number of MiB, or a size like "2G"), got 64',
  ],
  [
    'disk_size as integer',
    '[vm_defaults]\ndisk_size = 8',
    'vm_defaults.disk_size: expected a size string with a unit like "8G" (a bare number is not allowed), got 8',
  ],
  ['disk_size not a size', '[vm_defaults]\ndisk_size = "big"', 'vm_defaults.disk_size: must be a size from 1G to 8T, got "big"'],
  [
    'memory not whole MiB',
    '[vm_defaults]\nmemory = "1536K"',
    'vm_defaults.memory: must be MiB from 128 to 1048576 (a whole number of MiB, or a size like "2G"), got "1536K"',
  ],
  [
    'memory as a float',
    '[vm_defaults]\nmemory = 1024.5',
    'vm_defaults.memory: must be MiB from 128 to 1048576 (a whole number of MiB, or a size like "2G"), got 1024.5',
  ],
  ['vcpu too many', '[vm_defaults]\nvcpu = 65', 'vm_defaults.vcpu: must be an integer from 1 to 64, got 65'],
  ['disk_size too small', '[vm_defaults]\ndisk_size = "512M"', 'vm_defaults.disk_size: must be a size from 1G to 8T, got "512M"'],
  ['vm_defaults not a table', 'vm_defaults = 3', 'vm_defaults: expected a table, got 3'],
  ['disk_size too large', '[vm_defaults]\ndisk_size = "9T"', 'vm_defaults.disk_size: must be a size from 1G to 8T, got "9T"'],
  [
    'memory too large',
    '[vm_defaults]\nmemory = "2T"',
    'vm_defaults.memory: must be MiB from 128 to 1048576 (a whole number of MiB, or a size like "2G"), got "2T"',
  ],
  [
    'memory in hex',
    '[vm_defaults]\nmemory = "0x400"',
    'vm_defaults.memory: must be MiB from 128 to 1048576 (a whole number of MiB, or a size like "2G"), got "0x400"',
  ],
  ['long image name is cut short', `default_image = "${'x'.repeat(5000)}"`, `default_image: "${'x'.repeat(48)}"… (5000 characters) is not a valid image name`],
  ['qemu_bin with a NUL', 'qemu_bin = "/usr/bin/qemu\\u0000x"', 'qemu_bin: must not contain control characters, got "/usr/bin/qemu\\u0000x"'],
  ['file_sync host with a newline', '[[file_sync]]\nhost = "~/a\\nb"\nguest = "~/x"', 'file_sync[0].host: must not contain control characters, got "~/a\\nb"'],
  ['public subnet', '[network]\nsubnet = "8.8.8.0/24"', 'network.subnet: "8.8.8.0/24" must be in a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)'],
  ['subnet prefix', '[network]\nsubnet = "10.0.0.0/8"', 'network.subnet: "10.0.0.0/8" must have a prefix between /16 and /29'],
  ['subnet host bits', '[network]\nsubnet = "172.30.0.1/24"', 'network.subnet: "172.30.0.1/24" has host bits set (use the network address)'],
  ['dns port privileged', '[network]\ndns_port = 53', 'network.dns_port: expected an unprivileged port (1024-65535), got 53'],
  ['tap pool negative', '[network]\ntap_pool = -1', 'network.tap_pool: expected an integer between 0 and 32, got -1'],
  ['subnet garbage', '[network]\nsubnet = "lan"', 'network.subnet: "lan" is not an IPv4 CIDR like "172.30.0.0/24"'],
  [
    'bridge name',
    '[network]\nbridge = "a-very-long-bridge-name"',
    'network.bridge: expected an interface name of 1-15 letters, digits, "_", "." or "-", got "a-very-long-bridge-name"',
  ],
  ['file_sync not an array', 'file_sync = "x"', 'file_sync: expected an array of tables ([[file_sync]])'],
  ['file_sync empty host', '[[file_sync]]\nhost = ""\nguest = "~/x"', 'file_sync[0].host: must not be empty'],
  ['file_sync missing host', '[[file_sync]]\nguest = "~/x"', 'file_sync[0].host: is required'],
  ['file_sync empty guest', '[[file_sync]]\nhost = "~/x"\nguest = ""', 'file_sync[0].guest: must not be empty'],
  ['file_sync host is bare ~', '[[file_sync]]\nhost = "~"\nguest = "~/x"', 'file_sync[0].host: must be absolute or start with ~/'],
  ['file_sync host not a string', '[[file_sync]]\nhost = 1\nguest = "~/x"', 'file_sync[0].host: expected a string, got 1'],
  ['file_sync entry not a table', 'file_sync = ["~/x"]', 'file_sync[0]: expected a table, got "~/x"'],
  ['file_sync missing guest', '[[file_sync]]\nhost = "~/x"', 'file_sync[0].guest: is required'],
  ['file_sync relative host', '[[file_sync]]\nhost = ".aws"\nguest = "~/.aws"', 'file_sync[0].host: must be absolute or start with ~/'],
  ['file_sync .. in host', '[[file_sync]]\nhost = "~/a/../../etc/shadow"\nguest = "~/x"', 'file_sync[0].host: must not contain ".."'],
  [
    'file_sync ~user host',
    '[[file_sync]]\nhost = "~bob/.aws"\nguest = "~/.aws"',
    'file_sync[0].host: ~user paths are not supported, use ~/ or an absolute path',
  ],
  ['file_sync .. in guest', '[[file_sync]]\nhost = "~/x"\nguest = "~/../etc/passwd"', 'file_sync[0].guest: must not contain ".."'],
  ['file_sync ~user guest', '[[file_sync]]\nhost = "~/x"\nguest = "~bob/x"', 'file_sync[0].guest: ~user paths are not supported, use ~/ or /root/'],
  ['file_sync guest outside', '[[file_sync]]\nhost = "~/x"\nguest = "/etc/x"', 'file_sync[0].guest: must be under ~/ or /root/'],
  ['file_sync guest /rootfoo', '[[file_sync]]\nhost = "~/x"\nguest = "/rootfoo/x"', 'file_sync[0].guest: must be under ~/ or /root/'],
  ['file_sync guest is /root', '[[file_sync]]\nhost = "~/x"\nguest = "/root"', 'file_sync[0].guest: must be under ~/ or /root/'],
  ['file_sync guest is /root/', '[[file_sync]]\nhost = "~/x"\nguest = "/root/"', 'file_sync[0].guest: must be under ~/ or /root/'],
  ['file_sync guest is bare ~', '[[file_sync]]\nhost = "~/x"\nguest = "~"', 'file_sync[0].guest: must be under ~/ or /root/'],
  ['file_sync guest is ~/', '[[file_sync]]\nhost = "~/x"\nguest = "~/"', 'file_sync[0].guest: must be under ~/ or /root/'],
  ['file_sync guest relative', '[[file_sync]]\nhost = "~/x"\nguest = ".aws"', 'file_sync[0].guest: must be under ~/ or /root/'],
  [
    'file_sync bad mode digits',
    '[[file_sync]]\nhost = "~/x"\nguest = "~/x"\nmode = "0999"',
    'file_sync[0].mode: expected an octal string like "0600", got "0999"',
  ],
  ['file_sync mode too short', '[[file_sync]]\nhost = "~/x"\nguest = "~/x"\nmode = "60"', 'file_sync[0].mode: expected an octal string like "0600", got "60"'],
  [
    'file_sync mode too long',
    '[[file_sync]]\nhost = "~/x"\nguest = "~/x"\nmode = "00600"',
    'file_sync[0].mode: expected an octal string like "0600", got "00600"',
  ],
  ['file_sync mode as integer', '[[file_sync]]\nhost = "~/x"\nguest = "~/x"\nmode = 644', 'file_sync[0].mode: expected an octal string like "0600", got 644'],
  [
    'error names the entry index',
    '[[file_sync]]\nhost = "~/a"\nguest = "~/a"\n[[file_sync]]\nhost = "~/b"\nguest = "/tmp/b"',
    'file_sync[1].guest: must be under ~/ or /root/',
  ],
  ['stats interval without a unit', 'stats_poll_interval = 5', 'stats_poll_interval: expected a duration from 1s to 1h like "5s" or "1500ms", got 5'],
  [
    'stats interval below the floor',
    'stats_poll_interval = "500ms"',
    'stats_poll_interval: expected a duration from 1s to 1h like "5s" or "1500ms", got "500ms"',
  ],
  ['stats interval above the ceiling', 'stats_poll_interval = "2h"', 'stats_poll_interval: expected a duration from 1s to 1h like "5s" or "1500ms", got "2h"'],
  ['stats interval not a duration', 'stats_poll_interval = "soon"', 'stats_poll_interval: expected a duration from 1s to 1h like "5s" or "1500ms", got "soon"'],
  ['TOML syntax error', 'vmm = "auto"\n[vm_defaults\nvcpu = 2', 'line 2, column 13: Invalid TOML document: illegal character in key'],
];

for (const [what, text, message] of INVALID) {
  test(`invalid: ${what}`, () => {
    assert.throws(
      () => parse(text),
      (error: unknown) => {
        assert.ok(error instanceof BangerError);
        assert.equal(error.code, 'ERR_CONFIG_INVALID');
        assert.equal(error.message, `${PATH}: ${message}`);
        assert.match(error.hint ?? '', /docs\/config\.md/);
        // The hint names the key to fix (or the line of a syntax error).
        const key = /^unknown key "([^"]+)"$/.exec(message)?.[1] ?? /^([\w.[\]]+):/.exec(message)?.[1];
        if (key !== undefined) assert.ok(error.hint?.includes(key), `hint ${JSON.stringify(error.hint)} names ${key}`);
        else assert.match(error.hint ?? '', /line \d+/);
        return true;
      },
    );
  });
}

test('an empty file is all defaults', () => {
  assert.deepEqual(parse(''), {
    defaultImage: 'debian-bookworm',
    vmm: 'auto',
    kernelMirror: 'http://deb.debian.org/debian',
    vmDefaults: {},
    network: { bridge: 'banger0', subnet: '172.30.0.0/24', dnsPort: 42069, tapPool: 2 },
    fileSync: [],
    insecureRegistries: [],
    statsPollIntervalMs: 5000,
  });
});

test('a full valid file parses to the expected values', () => {
  const config = parse(`
default_image = "my-image"
vmm = "qemu"
qemu_bin = "/opt/qemu/bin/qemu-system-x86_64"
firecracker_bin = "/usr/local/bin/firecracker"
kernel_mirror = "http://mirror.example/debian/"
stats_poll_interval = "2s"

[vm_defaults]
vcpu = 4
memory = "2G"
disk_size = "16GiB"

[network]
bridge = "br-banger"
subnet = "10.77.0.0/16"
dns_port = 5353
tap_pool = 0

[[file_sync]]
host = "~/.aws"
guest = "~/.aws"

[[file_sync]]
host = "/etc/gitconfig"
guest = "/root/.gitconfig"
mode = "0644"

[[file_sync]]
host = "~/bin/tool/"
guest = "~/bin/tool"
mode = "755"

[registries]
insecure = ["registry.lan:5000", "[fd00::1]:5000"]
`);
  assert.deepEqual(config, {
    defaultImage: 'my-image',
    vmm: 'qemu',
    qemuBin: '/opt/qemu/bin/qemu-system-x86_64',
    firecrackerBin: '/usr/local/bin/firecracker',
    kernelMirror: 'http://mirror.example/debian',
    vmDefaults: { vcpu: 4, memoryMiB: 2048, diskSizeBytes: 16 * 1024 ** 3 },
    network: { bridge: 'br-banger', subnet: '10.77.0.0/16', dnsPort: 5353, tapPool: 0 },
    fileSync: [
      { host: '/home/u/.aws', guest: '/root/.aws' },
      { host: '/etc/gitconfig', guest: '/root/.gitconfig', mode: 0o644 },
      { host: '/home/u/bin/tool', guest: '/root/bin/tool', mode: 0o755 },
    ],
    insecureRegistries: ['registry.lan:5000', '[fd00::1]:5000'],
    statsPollIntervalMs: 2000,
  });
});

test('stats_poll_interval takes ms, s, m and h, from 1s to 1h', () => {
  const interval = (text: string): number => parse(`stats_poll_interval = "${text}"`).statsPollIntervalMs;
  assert.equal(interval('1500ms'), 1500);
  assert.equal(interval('1s'), 1000);
  assert.equal(interval('2m'), 120_000);
  assert.equal(interval('1h'), 3_600_000);
  assert.throws(() => interval('999ms'), { code: 'ERR_CONFIG_INVALID' });
  assert.throws(() => interval('5 s'), { code: 'ERR_CONFIG_INVALID' });
});

test('registries.insecure takes registry hosts only', () => {
  assert.throws(() => parse('[registries]\ninsecure = ["http://registry.lan"]'), { code: 'ERR_CONFIG_INVALID', message: /registries\.insecure\[0\]/ });
  assert.throws(() => parse('[registries]\ninsecure = "registry.lan"'), { code: 'ERR_CONFIG_INVALID', message: /registries\.insecure/ });
  assert.throws(() => parse('[registries]\nmirrors = []'), { code: 'ERR_CONFIG_INVALID', message: /registries\.mirrors/ });
});

test('memory accepts plain MiB integers', () => {
  assert.equal(parse('[vm_defaults]\nmemory = 1536').vmDefaults.memoryMiB, 1536);
  assert.equal(parse('[vm_defaults]\nmemory = "512M"').vmDefaults.memoryMiB, 512);
});

test('hints say what to do', () => {
  const hintOf = (text: string): string | undefined => {
    try {
      parse(text);
    } catch (error) {
      if (error instanceof BangerError) return error.hint;
    }
    return undefined;
  };
  assert.equal(
    hintOf('[vm_defaults]\ncpus = 2'),
    'remove "vm_defaults.cpus" or correct its spelling; docs/config.md lists every key (`banger doctor` re-checks the file)',
  );
  assert.equal(
    hintOf('[vm_defaults]\nvcpu = 0'),
    'fix vm_defaults.vcpu; docs/config.md describes every key and its allowed values (`banger doctor` re-checks the file)',
  );
  assert.equal(hintOf('vmm = '), 'fix the TOML syntax at line 1; docs/config.md shows a complete example file');
});

test('a syntax error keeps the TOML error as its cause', () => {
  assert.throws(
    () => parse('[vm_defaults\n'),
    (error: unknown) => error instanceof BangerError && error.cause instanceof TomlError,
  );
});

test('parseConfig is pure: home comes from the caller', () => {
  const config = parseConfig('[[file_sync]]\nhost = "~/.aws/"\nguest = "/root/.aws/"\nmode = "0755"', { path: PATH, home: '/srv/other' });
  assert.deepEqual(config.fileSync, [{ host: '/srv/other/.aws', guest: '/root/.aws', mode: 0o755 }]);
});

test('file_sync is optional and defaults to none', () => {
  assert.deepEqual(parse('vmm = "firecracker"').fileSync, []);
  assert.equal(parse('vmm = "firecracker"').vmm, 'firecracker');
});
