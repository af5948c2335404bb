import { request } from 'node:http';

import { BangerError } from '../../rpc/errors.js';

/**
 * Client for Firecracker's HTTP API over its unix socket, following the
 * published OpenAPI spec (swagger 2.0, firecracker.yaml). Every request is
 * JSON; success is 204 (or 200 with a body for GETs); any other status
 * carries `{ "fault_message": "..." }`, surfaced as ERR_VMM_FAILED naming the
 * call.
 */

export interface MachineConfiguration {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
}

export interface BootSource {
  kernel_image_path: string;
  initrd_path?: string;
  boot_args?: string;
}

export interface Drive {
  drive_id: string;
  path_on_host: string;
  is_root_device: boolean;
  is_read_only: boolean;
  cache_type?: 'Unsafe' | 'Writeback';
}

export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
}

export interface Vsock {
  guest_cid: number;
  uds_path: string;
}

export interface Logger {
  log_path: string;
  level?: 'Error' | 'Warning' | 'Info' | 'Debug' | 'Trace' | 'Off';
  show_level?: boolean;
  show_log_origin?: boolean;
}

export interface Metrics {
  metrics_path: string;
}

/** PUT /serial (Firecracker >= 1.14): where the guest's serial output goes instead of Firecracker's stdout. */
export interface Serial {
  /** A file or named pipe; Firecracker opens it read-write and non-blocking at InstanceStart (creating a file if absent). */
  serial_out_path: string;
}

export type ActionType = 'InstanceStart' | 'SendCtrlAltDel' | 'FlushMetrics';

export interface InstanceInfo {
  app_name: string;
  id: string;
  state: 'Not started' | 'Running' | 'Paused';
  vmm_version: string;
}

export class FirecrackerApi {
  readonly #socketPath: string;

  constructor(socketPath: string) {
    this.#socketPath = socketPath;
  }

  describeInstance(): Promise<InstanceInfo> {
    return this.#call('GET', '/') as Promise<InstanceInfo>;
  }

  version(): Promise<{ firecracker_version: string }> {
    return this.#call('GET', '/version') as Promise<{ firecracker_version: string }>;
  }

  putMachineConfig(config: MachineConfiguration): Promise<void> {
    return this.#put('/machine-config', config);
  }

  getMachineConfig(): Promise<MachineConfiguration> {
    return this.#call('GET', '/machine-config') as Promise<MachineConfiguration>;
  }

  putBootSource(source: BootSource): Promise<void> {
    return this.#put('/boot-source', source);
  }

  putDrive(drive: Drive): Promise<void> {
    return this.#put(`/drives/${encodeURIComponent(drive.drive_id)}`, drive);
  }

  putNetworkInterface(iface: NetworkInterface): Promise<void> {
    return this.#put(`/network-interfaces/${encodeURIComponent(iface.iface_id)}`, iface);
  }

  putVsock(vsock: Vsock): Promise<void> {
    return this.#put('/vsock', vsock);
  }

  putLogger(logger: Logger): Promise<void> {
    return this.#put('/logger', logger);
  }

  putMetrics(metrics: Metrics): Promise<void> {
    return this.#put('/metrics', metrics);
  }

  putSerial(serial: Serial): Promise<void> {
    return this.#put('/serial', serial);
  }

  action(action_type: ActionType): Promise<void> {
    return this.#put('/actions', { action_type });
  }

  async #put(path: string, body: unknown): Promise<void> {
    await this.#call('PUT', path, body);
  }

  #call(method: 'GET' | 'PUT' | 'PATCH', path: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.#socketPath,
          method,
          path,
          headers: {
            Accept: 'application/json',
            ...(payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': payload.length }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve(text === '' ? undefined : (JSON.parse(text) as unknown));
              return;
            }
            let fault = text;
            try {
              fault = (JSON.parse(text) as { fault_message?: string }).fault_message ?? text;
            } catch {
              // not JSON: keep the raw body
            }
            reject(new BangerError('ERR_VMM_FAILED', `firecracker ${method} ${path} failed (${status}): ${fault}`, { hint: "see the VM's firecracker.log" }));
          });
        },
      );
      req.on('error', (error) => {
        reject(new BangerError('ERR_VMM_FAILED', `firecracker API ${method} ${path}: ${error.message}`, { cause: error }));
      });
      req.end(payload);
    });
  }
}
