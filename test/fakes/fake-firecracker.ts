import { constants, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/**
 * A fake Firecracker for driver tests, faithful to the published OpenAPI spec
 * (firecracker.yaml, 1.17) for the endpoints banger uses: status codes
 * (204 on success, 200 with a body for GETs, 400 with `{"fault_message"}`
 * otherwise), required fields, unknown-field rejection, pre-boot-only PUTs
 * and post-boot-only actions, files that must exist, and InstanceStart
 * refusing without a kernel. The messages are Firecracker's own wording.
 * It never boots anything: unit tests only. What stands in for a guest is
 * one console line, `fake-firecracker: <id> booted`, written at
 * InstanceStart to the serial_out_path the way Firecracker writes it
 * (opened read-write and non-blocking; bytes that do not fit are dropped).
 * FAKE_FIRECRACKER_VERSION overrides the version it reports.
 */

type Json = Record<string, unknown>;

interface State {
  started: boolean;
  machine: { vcpu_count: number; mem_size_mib: number; smt: boolean; track_dirty_pages: boolean };
  bootSource?: Json;
  drives: Map<string, Json>;
  interfaces: Map<string, Json>;
  vsock?: Json;
  logger?: Json;
  metrics?: Json;
  serial?: Json;
  actions: string[];
}

const POST_BOOT = 'The requested operation is not supported after starting the microVM.';
const PRE_BOOT = 'The requested operation is not supported before starting the microVM.';

class Fault extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

function deserialize(body: string, allowed: readonly string[], required: readonly string[]): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new Fault(`An error occurred when deserializing the json body of a request: ${(error as Error).message}.`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Fault('An error occurred when deserializing the json body of a request: expected a JSON object.');
  }
  const object = parsed as Json;
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      throw new Fault(
        `An error occurred when deserializing the json body of a request: unknown field \`${key}\`, expected one of ${allowed.map((k) => `\`${k}\``).join(', ')}.`,
      );
    }
  }
  for (const key of required) {
    if (object[key] === undefined) throw new Fault(`An error occurred when deserializing the json body of a request: missing field \`${key}\`.`);
  }
  return object;
}

function mustExist(path: unknown, what: string): void {
  if (typeof path !== 'string' || !existsSync(path)) throw new Fault(`${what}: No such file or directory (os error 2)`);
}

/**
 * Opens the serial output as Firecracker does (read-write, non-blocking,
 * created if absent) and keeps it open for the process's life: a pipe's
 * contents are discarded once nobody holds it.
 */
function openSerial(path: string): number {
  return openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_CREAT, 0o600);
}

/** Writes guest console output as Firecracker does: never blocking, dropping what the file or pipe cannot take. */
function writeSerial(fd: number, text: string): void {
  try {
    writeSync(fd, text);
  } catch {
    // EAGAIN: the pipe is full; Firecracker drops the bytes too.
  }
}

export function fakeFirecracker(socketPath: string, id: string): { close: () => void; state: State } {
  const version = process.env.FAKE_FIRECRACKER_VERSION ?? '1.17.0-dev';
  const state: State = {
    started: false,
    machine: { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false },
    drives: new Map(),
    interfaces: new Map(),
    actions: [],
  };
  const preBoot = (): void => {
    if (state.started) throw new Fault(POST_BOOT);
  };

  const routes = (method: string, path: string, body: string): { status: number; json?: unknown } => {
    const drive = /^\/drives\/([^/]+)$/.exec(path);
    const iface = /^\/network-interfaces\/([^/]+)$/.exec(path);
    if (method === 'GET' && path === '/')
      return { status: 200, json: { app_name: 'Firecracker', id, state: state.started ? 'Running' : 'Not started', vmm_version: version } };
    if (method === 'GET' && path === '/version') return { status: 200, json: { firecracker_version: version } };
    if (method === 'GET' && path === '/machine-config') return { status: 200, json: state.machine };
    if (method === 'GET' && path === '/vm/config') {
      return {
        status: 200,
        json: {
          'boot-source': state.bootSource ?? {},
          'machine-config': state.machine,
          drives: [...state.drives.values()],
          'network-interfaces': [...state.interfaces.values()],
          vsock: state.vsock ?? null,
          logger: state.logger ?? null,
          metrics: state.metrics ?? null,
        },
      };
    }
    if (method === 'PUT' && path === '/logger') {
      preBoot();
      const logger = deserialize(body, ['level', 'log_path', 'show_level', 'show_log_origin', 'module'], []);
      if (logger.log_path !== undefined) mustExist(logger.log_path, 'Logger error: Failed to open target file');
      state.logger = logger;
      return { status: 204 };
    }
    if (method === 'PUT' && path === '/metrics') {
      const metrics = deserialize(body, ['metrics_path', 'emit_id', 'properties'], ['metrics_path']);
      if (state.metrics !== undefined) throw new Fault('Metrics config error: Reinitialization of metrics not allowed.');
      mustExist(metrics.metrics_path, 'Metrics config error: Cannot initialize the metrics system due to bad user input');
      state.metrics = metrics;
      return { status: 204 };
    }
    if (method === 'PUT' && path === '/machine-config') {
      preBoot();
      const config = deserialize(
        body,
        ['vcpu_count', 'mem_size_mib', 'smt', 'track_dirty_pages', 'cpu_template', 'huge_pages'],
        ['vcpu_count', 'mem_size_mib'],
      );
      const vcpus = config.vcpu_count;
      const smt = config.smt === true;
      if (typeof vcpus !== 'number' || vcpus < 1 || vcpus > 32 || (smt && vcpus > 1 && vcpus % 2 !== 0)) {
        throw new Fault('Machine config error: The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.');
      }
      if (typeof config.mem_size_mib !== 'number' || config.mem_size_mib < 1) throw new Fault('Machine config error: The memory size (MiB) is invalid.');
      state.machine = { vcpu_count: vcpus, mem_size_mib: config.mem_size_mib, smt, track_dirty_pages: config.track_dirty_pages === true };
      return { status: 204 };
    }
    if (method === 'PUT' && path === '/boot-source') {
      preBoot();
      const source = deserialize(body, ['kernel_image_path', 'initrd_path', 'boot_args'], ['kernel_image_path']);
      mustExist(source.kernel_image_path, 'Boot source error: The kernel file cannot be opened');
      if (source.initrd_path !== undefined) mustExist(source.initrd_path, 'Boot source error: The initrd file cannot be opened');
      state.bootSource = source;
      return { status: 204 };
    }
    if (drive !== null && method === 'PUT') {
      preBoot();
      const config = deserialize(
        body,
        ['drive_id', 'partuuid', 'is_root_device', 'cache_type', 'is_read_only', 'path_on_host', 'rate_limiter', 'io_engine', 'socket'],
        ['drive_id', 'is_root_device'],
      );
      if (config.drive_id !== decodeURIComponent(drive[1] ?? '')) throw new Fault('The id from the path does not match the id from the body!');
      mustExist(config.path_on_host, 'Drive config error: Unable to open the backing file');
      if (config.is_root_device === true && [...state.drives.values()].some((d) => d.is_root_device === true && d.drive_id !== config.drive_id)) {
        throw new Fault('Drive config error: A root block device already exists!');
      }
      state.drives.set(config.drive_id, config);
      return { status: 204 };
    }
    if (drive !== null && method === 'PATCH') {
      if (!state.started) throw new Fault(PRE_BOOT);
      deserialize(body, ['drive_id', 'path_on_host', 'rate_limiter'], ['drive_id']);
      return { status: 204 };
    }
    if (iface !== null && method === 'PUT') {
      preBoot();
      const config = deserialize(body, ['iface_id', 'host_dev_name', 'guest_mac', 'mtu', 'rx_rate_limiter', 'tx_rate_limiter'], ['iface_id', 'host_dev_name']);
      if (config.iface_id !== decodeURIComponent(iface[1] ?? '')) throw new Fault('The id from the path does not match the id from the body!');
      state.interfaces.set(config.iface_id, config);
      return { status: 204 };
    }
    if (method === 'PUT' && path === '/vsock') {
      preBoot();
      const config = deserialize(body, ['guest_cid', 'uds_path', 'vsock_id'], ['guest_cid', 'uds_path']);
      if (typeof config.guest_cid !== 'number' || config.guest_cid < 3) throw new Fault('Vsock config error: Invalid guest CID.');
      state.vsock = config;
      return { status: 204 };
    }
    if (method === 'PUT' && path === '/serial') {
      preBoot();
      state.serial = deserialize(body, ['serial_out_path', 'rate_limiter'], []);
      return { status: 204 };
    }
    if (method === 'PUT' && path === '/actions') {
      const action = deserialize(body, ['action_type'], ['action_type']).action_type;
      if (action === 'InstanceStart') {
        preBoot();
        if (state.bootSource === undefined) throw new Fault('Start microvm error: Cannot start the VM because the kernel was not configured.');
        state.started = true;
        const serialOut = state.serial?.serial_out_path;
        if (typeof serialOut === 'string') writeSerial(openSerial(serialOut), `fake-firecracker: ${id} booted\r\n`);
      } else if (action === 'SendCtrlAltDel') {
        if (!state.started) throw new Fault(PRE_BOOT);
        // The guest reboots on Ctrl-Alt-Del; with reboot=k Firecracker then exits.
        setTimeout(() => process.exit(0), 50);
      } else if (action !== 'FlushMetrics') {
        throw new Fault(
          `An error occurred when deserializing the json body of a request: unknown variant \`${String(action)}\`, expected one of \`FlushMetrics\`, \`InstanceStart\`, \`SendCtrlAltDel\`.`,
        );
      }
      state.actions.push(action);
      return { status: 204 };
    }
    throw new Fault(`Invalid request method and/or path: ${method} ${path}.`);
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let status: number;
      let json: unknown;
      try {
        ({ status, json } = routes(req.method ?? 'GET', req.url ?? '/', Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        status = error instanceof Fault ? error.status : 500;
        json = { fault_message: (error as Error).message };
      }
      res.writeHead(status, json === undefined ? {} : { 'Content-Type': 'application/json' });
      res.end(json === undefined ? undefined : JSON.stringify(json));
    });
  });
  rmSync(socketPath, { force: true });
  server.listen(socketPath);
  return {
    state,
    close: () => {
      server.close();
    },
  };
}

/** Runs as the `firecracker` binary: `fake-firecracker --api-sock PATH --id ID`. */
export function main(argv: readonly string[]): void {
  const socket = argv[argv.indexOf('--api-sock') + 1];
  const id = argv[argv.indexOf('--id') + 1] ?? 'anonymous-instance';
  if (socket === undefined || !argv.includes('--api-sock')) {
    process.stderr.write('fake-firecracker: --api-sock is required\n');
    process.exit(1);
  }
  fakeFirecracker(socket, id);
}
